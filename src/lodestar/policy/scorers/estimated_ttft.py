"""Estimated-TTFT scorer — the ``estimated-ttft`` baseline: the strongest analytic heuristic we
can write, allowed to know each instance's hardware (Lodestar is not).

Predicted TTFT of the request on instance i (seconds):

    ttft_i = (pending_i + max(0, prompt_tokens − cached_i)) / prefill_tokens_per_s_i

``pending_i``: uncached prompt tokens of the requests this router sent to i that have no first
token yet (queued or prefilling there), tracked through the hooks; ``cached_i``: the matched
prefix (blocks × 16 tokens) in an index of this router's own past decisions, entries expiring
about ``index_ttl_s`` after they were last routed (within TTL/8) and optionally capped per
instance (LRU, deepest blocks first);
``prefill_tokens_per_s_i``: the instance's nominal prefill speed from a static per-hardware
table (``prefill_tokens_per_s`` by instance id, else ``default_prefill_tokens_per_s``; the
simulator fills it from the cluster). Lowest predicted TTFT wins; the score is
``(t_max − t)/(t_max − t_min)`` (1.0 for all if equal), so with ``max-score`` ties break at
random. No peer source: ours. It ignores decode interference and traffic from other routers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from lodestar import tokenizer
from lodestar.policy.contracts import InstanceView, Outcome, RequestView
from lodestar.policy.framework import Scored, Scorer
from lodestar.policy.params import PluginParams
from lodestar.policy.prefix_index import BlockPrefixIndex
from lodestar.policy.scorers.ledger import RequestLedger
from lodestar.policy.scorers.normalize import lower_is_better

BLOCK = tokenizer.BLOCK_SIZE


class EstimatedTTFTParams(PluginParams):
    prefill_tokens_per_s: dict[str, Annotated[float, Field(gt=0.0)]] = Field(
        default_factory=dict, description="instance id → nominal prefill tokens/s"
    )
    default_prefill_tokens_per_s: float = Field(default=10_000.0, gt=0.0)
    index_ttl_s: float | None = Field(default=120.0, gt=0.0)
    index_capacity_blocks: int | None = Field(default=None, ge=1, description="per-instance LRU cap (blocks)")

    def speed(self, instance_id: str) -> float:
        return self.prefill_tokens_per_s.get(instance_id, self.default_prefill_tokens_per_s)


class EstimatedTTFTScorer(Scorer):
    def __init__(self, params: EstimatedTTFTParams) -> None:
        self.params = params
        self._index = BlockPrefixIndex(capacity_per_instance=params.index_capacity_blocks, ttl_s=params.index_ttl_s)
        self._ledger = RequestLedger()

    def predict(
        self, request: RequestView, candidates: Sequence[InstanceView], now_s: float
    ) -> tuple[list[float], list[int]]:
        """Predicted TTFT (s) and cached prompt tokens for each candidate."""
        ids = [c.instance_id for c in candidates]
        matched = self._index.match(request.block_hashes, ids, now_s)
        cached = [m * BLOCK for m in matched]
        ttft = [
            (self._ledger.pending_prefill_tokens(iid) + max(0, request.prompt_tokens - cached[k]))
            / self.params.speed(iid)
            for k, iid in enumerate(ids)
        ]
        return ttft, cached

    def score(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Scored:
        ttft, cached = self.predict(request, candidates, now_s)
        return Scored(lower_is_better(ttft), cached_tokens=cached, features={"predicted_ttft_s": ttft})

    def on_picked(self, request: RequestView, instance_id: str, now_s: float) -> None:
        matched = self._index.match(request.block_hashes, [instance_id], now_s)[0]
        self._ledger.add(request.request_id, instance_id, max(0, request.prompt_tokens - matched * BLOCK))
        self._index.add(instance_id, request.block_hashes, now_s)

    def on_first_token(self, request_id: str, instance_id: str, now_s: float) -> None:
        self._ledger.first_token(request_id)

    def on_outcome(self, outcome: Outcome, now_s: float) -> None:
        self._ledger.finish(outcome.decision_id)
