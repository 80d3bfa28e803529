"""The gateway ↔ router HTTP contract (``POST /v1/route``, ``POST /v1/feedback``).

The gateway tokenises the prompt with the project tokenizer and sends its size and chained
16-token block hashes (never the text); the router answers with the chosen instance. After
forwarding, the gateway reports the first token and the end of every routed request, so the
router's in-flight accounting and the policy's feedback hooks stay exact.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_BLOCKS = 16_384  # 262k tokens of 16-token blocks

Ident = Annotated[str, Field(min_length=1, max_length=256)]
Seconds = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class RouteRequest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: Ident
    model: Ident
    prompt_tokens: Annotated[int, Field(ge=1)]
    block_hashes: list[Annotated[int, Field(ge=0, lt=2**64)]] = Field(default_factory=list, max_length=MAX_BLOCKS)
    expected_output_tokens: Annotated[int, Field(ge=1)] | None = None
    tenant: Annotated[str, Field(max_length=256)] | None = None
    session_id: Annotated[str, Field(max_length=256)] | None = None
    exclude: list[Ident] = Field(default_factory=list, max_length=256, description="instances not to use (retries)")


class RouteResponse(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: Ident
    instance_id: Ident
    url: str
    policy: Ident
    model_version: int | None = None
    fallback: bool = False
    explore: bool = False


class Feedback(BaseModel):
    """One event about a routed request. ``first_token`` then ``finished`` (or ``failed``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: Ident
    instance_id: Ident
    kind: Literal["first_token", "finished", "failed"]
    prompt_tokens: Annotated[int, Field(ge=0)] = 0
    completion_tokens: Annotated[int, Field(ge=0)] = 0
    ttft_s: Seconds | None = None
    tpot_s: Seconds | None = None
    e2e_s: Seconds | None = None
    error: Annotated[str, Field(max_length=128)] | None = None


class FeedbackBatch(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    events: list[Feedback] = Field(min_length=1, max_length=10_000)
