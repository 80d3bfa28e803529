"""An instance's ``GET /v1/models`` body → the served model and its context length. Pure.

vLLM lists the base model first and LoRA adapters after it (with ``parent`` set); the base
model is the first card without a parent. ``max_model_len`` is vLLM's (and recent SGLang's)
extension of the OpenAI model card; an engine without it gives None.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ModelInfoError(ValueError):
    """The body is not an OpenAI model list with at least one model."""


class _ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=256)
    parent: str | None = None
    max_model_len: int | None = Field(default=None, ge=1)


class _ModelList(BaseModel):
    model_config = ConfigDict(extra="allow")

    data: list[_ModelCard] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    model: str
    max_model_len: int | None


def parse_models(body: bytes | str) -> ModelInfo:
    """The base model of a ``/v1/models`` response; raises :class:`ModelInfoError`."""
    try:
        models = _ModelList.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ModelInfoError(f"invalid /v1/models response: {where}: {first['msg']}") from None
    base = next((card for card in models.data if card.parent is None), models.data[0])
    return ModelInfo(model=base.id, max_model_len=base.max_model_len)
