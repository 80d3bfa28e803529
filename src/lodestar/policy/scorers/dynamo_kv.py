"""NVIDIA Dynamo KV-router cost as a scorer — the ``dynamo-kv`` baseline, with the ``softmax``
picker carrying Dynamo's temperature (ai-dynamo/dynamo ``lib/kv-router/src/scheduling/
selector/default.rs`` and ``scheduling/config.rs``, main branch as of 2026; the *current* cost
form, not the legacy ``overlap_score_weight · prefill_blocks + decode_blocks``).

Dynamo, per worker (16-token KV blocks):

    raw_prefill_blocks = (active_prefill_tokens + prompt_tokens) / block_size
    credit             = overlap_score_credit · decay · overlap_blocks
    logit              = prefill_load_scale · max(0, raw_prefill_blocks − credit)
                         + decode_cost_blocks + decode_active_request_weight · active_requests

``active_prefill_tokens``: uncached prompt tokens (prompt − overlap at routing time) of the
requests the router sent there that have no first token yet; ``decode_cost_blocks``: the
worker's active blocks (union of its active requests' prompt blocks, shared prefixes counted
once) plus this request's blocks not already active; ``decay`` = 1 unless
``overlap_score_credit_decay`` > 0, then 1 / (1 + decay · excess_prefill_blocks /
request_blocks) with the excess over the least-loaded candidate. Lowest logit wins, ties at
random; with ``router_temperature`` T > 0 Dynamo samples pᵢ ∝ exp(−(cᵢ − c_min) /
((c_max − c_min)·T)). Defaults: overlap_score_credit 1.0, overlap_score_credit_decay 0.0,
prefill_load_scale 1.0, decode_active_request_weight 0.0, router_temperature 0.0,
router_ttl_secs 120 (approximate mode), output-block tracking off.

Ours: overlap comes from Dynamo's approximate mode (``use_kv_events=false``): an index of the
router's own past decisions whose blocks expire 120 s after they were last routed (no KV
events; Dynamo's optional tree-size pruning is not modelled; our index refreshes a held
prefix at most every TTL/8, so a block expires 105–120 s after its last routing). Loads are tracked from this
router's own decisions through the hooks (``on_picked``, ``on_first_token``,
``on_outcome``). The score is the normalised cost ``(c_max − c)/(c_max − c_min)`` (1.0 for
all if equal), so the ``max-score`` picker gives Dynamo's argmin with random ties and the
``softmax`` picker with temperature T reproduces Dynamo's sampling exactly (pᵢ ∝ exp(sᵢ/T)).
Host/disk/shared-cache tiers, worker taints, queueing (``router_queue_threshold``) and
prefill/decode disaggregation are not modelled. Prompt blocks are full 16-token blocks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import Field

from lodestar import tokenizer
from lodestar.policy.contracts import InstanceView, Outcome, RequestView
from lodestar.policy.framework import Scored, Scorer
from lodestar.policy.params import PluginParams
from lodestar.policy.prefix_index import BlockPrefixIndex
from lodestar.policy.scorers.ledger import RequestLedger
from lodestar.policy.scorers.normalize import lower_is_better

BLOCK = tokenizer.BLOCK_SIZE


class DynamoKVParams(PluginParams):
    overlap_score_credit: float = Field(default=1.0, ge=0.0, le=1.0)
    overlap_score_credit_decay: float = Field(default=0.0, ge=0.0)
    prefill_load_scale: float = Field(default=1.0, ge=0.0)
    decode_active_request_weight: float = Field(default=0.0, ge=0.0)
    router_ttl_s: float = Field(default=120.0, gt=0.0, description="approximate-mode block TTL (router_ttl_secs)")


def worker_logit(
    params: DynamoKVParams,
    *,
    active_prefill_tokens: int,
    prompt_tokens: int,
    overlap_blocks: int,
    decode_cost_blocks: int,
    active_requests: int,
    decay: float = 1.0,
) -> float:
    """Dynamo's per-worker cost in blocks (lower is better)."""
    raw_prefill_blocks = (active_prefill_tokens + prompt_tokens) / BLOCK
    credit = params.overlap_score_credit * decay * overlap_blocks
    prefill = params.prefill_load_scale * max(0.0, raw_prefill_blocks - credit)
    return prefill + decode_cost_blocks + params.decode_active_request_weight * active_requests


class DynamoKVScorer(Scorer):
    def __init__(self, params: DynamoKVParams) -> None:
        self.params = params
        self._index = BlockPrefixIndex(ttl_s=params.router_ttl_s)
        self._ledger = RequestLedger(track_blocks=True)

    def costs(
        self, request: RequestView, candidates: Sequence[InstanceView], now_s: float
    ) -> tuple[list[float], list[int]]:
        """Each candidate's logit and overlap (blocks)."""
        hashes = request.block_hashes
        ids = [c.instance_id for c in candidates]
        overlaps = self._index.match(hashes, ids, now_s)
        ledger = self._ledger
        prefill = [ledger.pending_prefill_tokens(i) for i in ids]
        floor = min(prefill)
        request_blocks = max(1, math.ceil(request.prompt_tokens / BLOCK))
        d = self.params.overlap_score_credit_decay
        n = len(hashes)
        out: list[float] = []
        for k, iid in enumerate(ids):
            decay = 1.0 if d == 0 else 1.0 / (1.0 + d * ((prefill[k] - floor) / BLOCK) / request_blocks)
            decode = ledger.active_blocks(iid) + n - ledger.active_prefix(iid, hashes)
            out.append(
                worker_logit(
                    self.params,
                    active_prefill_tokens=prefill[k],
                    prompt_tokens=request.prompt_tokens,
                    overlap_blocks=overlaps[k],
                    decode_cost_blocks=decode,
                    active_requests=ledger.active_requests(iid),
                    decay=decay,
                )
            )
        return out, overlaps

    def score(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Scored:
        costs, overlaps = self.costs(request, candidates, now_s)
        return Scored(
            lower_is_better(costs),
            cached_tokens=[o * BLOCK for o in overlaps],
            features={"cost_blocks": costs, "overlap_blocks": [float(o) for o in overlaps]},
        )

    def on_picked(self, request: RequestView, instance_id: str, now_s: float) -> None:
        hashes = request.block_hashes
        overlap = self._index.match(hashes, [instance_id], now_s)[0]
        uncached = max(0, request.prompt_tokens - overlap * BLOCK)
        self._ledger.add(request.request_id, instance_id, uncached, hashes)
        self._index.add(instance_id, hashes, now_s)

    def on_first_token(self, request_id: str, instance_id: str, now_s: float) -> None:
        self._ledger.first_token(request_id)

    def on_outcome(self, outcome: Outcome, now_s: float) -> None:
        self._ledger.finish(outcome.decision_id)
