"""The standard filters every shipped profile starts with. Stateless; order-preserving."""

from __future__ import annotations

from collections.abc import Sequence

from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Filter


class HealthyFilter(Filter):
    """Keeps instances whose last known state is healthy."""

    def filter(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> list[InstanceView]:
        return [c for c in candidates if c.healthy]


class ModelFilter(Filter):
    """Keeps instances that serve the requested model."""

    def filter(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> list[InstanceView]:
        return [c for c in candidates if c.model == request.model]


class ContextLengthFilter(Filter):
    """Keeps instances whose ``max_model_len`` (when known) fits the prompt plus the expected
    output (0 when unknown): ``prompt_tokens + expected_output_tokens ≤ max_model_len``."""

    def filter(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> list[InstanceView]:
        need = request.prompt_tokens + (request.expected_output_tokens or 0)
        return [c for c in candidates if c.max_model_len is None or need <= c.max_model_len]
