"""llm-d ``prefix-cache-scorer`` with its approximate prefix index — the prefix part of the
``llm-d`` baseline (llm-d/llm-d-inference-scheduler @520af47, scorer
``pkg/epp/framework/plugins/scheduling/scorer/prefix``, index
``requestcontrol/dataproducer/approximateprefix``; the same indexer as
kubernetes-sigs/gateway-api-inference-extension ``scheduling/framework/plugins/multi/prefix``).

llm-d: the prompt text is cut into blocks of ``blockSizeTokens × 4`` characters (16 tokens →
64 characters), each block hash chained on the previous one (chain seeded with the model
name), at most ``maxPrefixBlocksToMatch`` = 256 blocks; an index maps block hash → pods with a
per-pod LRU of ``lruCapacityPerServer`` = 31,250 entries, blocks added root-first; the match
walks the blocks greedily and stops at the first miss; score = matched blocks / total blocks
(0 for a prompt shorter than one block); after the decision the chosen pod is added.

Ours: the blocks are the prompt's chained 16-token block hashes (``RequestView.block_hashes``)
instead of 64-character text blocks — the same granularity, but exact token blocks where
llm-d approximates tokens by 4 characters; the chain is not seeded with the model because the
candidates of one decision all serve the request's model. Root-first LRU adds are kept
(``evict_root_first=True``). Differences: llm-d's walk continues while *any* pod holds the
block and counts a pod's later hits even after that pod's own first miss (only possible
after a mid-prefix LRU eviction), where ours stops each pod at its own first miss; the LRU
capacity is fixed (llm-d's ``autoTune`` derives it from ``vllm:cache_config_info``); pods
that leave are not pruned from the index (their entries are simply never matched again).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import Field

from lodestar import tokenizer
from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Scored, Scorer
from lodestar.policy.params import PluginParams
from lodestar.policy.prefix_index import BlockPrefixIndex


class PrefixCacheParams(PluginParams):
    max_prefix_blocks: int = Field(default=256, ge=1, description="llm-d maxPrefixBlocksToMatch")
    lru_capacity_per_instance: int = Field(default=31_250, ge=1, description="llm-d lruCapacityPerServer (blocks)")


class PrefixCacheScorer(Scorer):
    def __init__(self, params: PrefixCacheParams) -> None:
        self.params = params
        self._index = BlockPrefixIndex(capacity_per_instance=params.lru_capacity_per_instance, evict_root_first=True)

    def score(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Scored:
        hashes = request.block_hashes[: self.params.max_prefix_blocks]
        total = len(hashes)
        if total == 0:
            zeros = [0] * len(candidates)
            return Scored([0.0] * len(candidates), cached_tokens=zeros)
        matched = self._index.match(hashes, [c.instance_id for c in candidates], now_s)
        return Scored(
            [m / total for m in matched],
            cached_tokens=[m * tokenizer.BLOCK_SIZE for m in matched],
        )

    def on_picked(self, request: RequestView, instance_id: str, now_s: float) -> None:
        self._index.add(instance_id, request.block_hashes[: self.params.max_prefix_blocks], now_s)
