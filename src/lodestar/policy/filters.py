"""The standard filters every shipped profile starts with. Stateless; order-preserving."""

from __future__ import annotations

from collections.abc import Sequence

from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Filter


class HealthyFilter(Filter):
    """Keeps instances whose last known state is healthy."""

    def filter(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> list[InstanceView]:
        return [c for c in candidates if c.healthy]

    def none_left(self, request: RequestView, candidates: Sequence[InstanceView]) -> str:
        return f"none of the {len(candidates)} instance(s) is healthy"


class ModelFilter(Filter):
    """Keeps instances that serve the requested model."""

    def filter(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> list[InstanceView]:
        return [c for c in candidates if c.model == request.model]

    def none_left(self, request: RequestView, candidates: Sequence[InstanceView]) -> str:
        return f"none of the {len(candidates)} instance(s) serves model {request.model!r}"


class ContextLengthFilter(Filter):
    """Keeps instances whose ``max_model_len`` (when known) fits the prompt plus the expected
    output (0 when unknown): ``prompt_tokens + expected_output_tokens ≤ max_model_len``."""

    def filter(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> list[InstanceView]:
        need = request.prompt_tokens + (request.expected_output_tokens or 0)
        return [c for c in candidates if c.max_model_len is None or need <= c.max_model_len]

    def none_left(self, request: RequestView, candidates: Sequence[InstanceView]) -> str:
        need = request.prompt_tokens + (request.expected_output_tokens or 0)
        largest = max((c.max_model_len or 0 for c in candidates), default=0)
        return (
            f"{need} tokens of context needed ({request.prompt_tokens} prompt + "
            f"{request.expected_output_tokens or 0} output); the largest of the {len(candidates)} instance(s) "
            f"of model {request.model!r} has {largest}"
        )
