"""AIBrix gateway ``prefix-cache`` routing as a picker — the ``aibrix-prefix-cache`` baseline
(vllm-project/aibrix @e3e10f9, ``pkg/plugins/gateway/algorithms/prefix_cache.go`` and
``pkg/utils/prefixcacheindexer/hash.go``, the local-indexer path without KV-event sync).

AIBrix, per request, with running = the gateway's own count of requests in flight per pod:
1. if max − min running > ``AIBRIX_PREFIX_CACHE_POD_RUNNING_REQUEST_IMBALANCE_ABS_COUNT`` (8),
   prefix matching is restricted to the pods with the minimum count;
2. prefix match on a hash table of blocks of 4 tokens of the *character* tokenizer (4
   characters), chained xxhash, one global LRU of 200,000 blocks (entries: block → pods),
   blocks unused for 20 min evicted; the walk stops for each pod at its first miss; a pod's
   match is an integer percent ``(matched blocks · 100) // prompt blocks``;
3. matched pods are shuffled, then stably sorted by match percent (desc) then running (asc);
   the first whose running ≤ mean + 1·std (sample std, over all ready pods) wins;
4. otherwise (no match, or none under the bound) the least-running pod among all ready pods,
   ties at random;
5. the chosen pod is added to the table for every block of the prompt.

Ours: one table entry per 16-token block (≈ 64 characters = 16 AIBrix blocks at
``chars_per_token`` 4), so the global capacity is 200,000 · 4 / 64 = 12,500 entries and the
percent is ``(matched blocks · 16 · 100) // prompt tokens`` (AIBrix's prompt blocks ≈ prompt
tokens at 4 characters per token and per block); the partial last block never matches.
Entries are refreshed when a prompt is added (AIBrix also refreshes on lookup, which only
touches blocks that the chosen pod's add then refreshes in the same order). Later AIBrix
versions replaced step 1 by ``max > 2·(mean of the others + 1)`` with a minimum gap of 8; we
follow @e3e10f9.
Propensity: the random choice is uniform among the candidates tied on (percent, running) at
the winning position, or among the least-running pods in the fallback. ``block_group`` > 1
keys the table by every g-th block (the chained hash of a g-block prefix), which divides the
per-request bookkeeping by g at a matching granularity of g·16 tokens (default 1: exact).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from itertools import compress, repeat
from operator import ge, not_

from pydantic import Field

from lodestar import tokenizer
from lodestar.policy.chain_lru import ChainLRU
from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Pick, Picker
from lodestar.policy.params import SeededParams

BLOCK = tokenizer.BLOCK_SIZE


class AIBrixPrefixCacheParams(SeededParams):
    imbalance_abs_count: int = Field(default=8, ge=0)
    standard_deviation_factor: float = Field(default=1.0, ge=0.0)
    block_number: int = Field(default=200_000, ge=1, description="global LRU capacity in AIBrix blocks")
    block_chars: int = Field(default=4, ge=1, description="AIBrix block size (character-tokenizer tokens)")
    eviction_duration_s: float = Field(default=1200.0, gt=0.0)
    chars_per_token: float = Field(default=4.0, gt=0.0)
    block_group: int = Field(
        default=1, ge=1, description="16-token blocks per table entry (1 = exact; >1 trades precision for speed)"
    )


class AIBrixPrefixTable:
    """AIBrix's prefix hash table: one global LRU of block entries (block → pods that added it
    since the entry was created), blocks touched root-first, entries idle for ``ttl_s`` dropped.

    Kept exactly but cheaply: the LRU is a :class:`ChainLRU`; ``created`` holds the run that
    (re)created each entry and ``seen[pod]`` the last run in which the pod added each block, so
    pod p holds block h iff h is live and ``seen[p][h] >= created[h]``.
    """

    def __init__(self, capacity: int, ttl_s: float) -> None:
        self.lru = ChainLRU(capacity, ttl_s, root_first=True)
        self._created: dict[int, int] = {}
        self._seen: dict[str, dict[int, int]] = {}
        # liveness marks of the last matched chain, reused by an add of the same chain right after
        self._hint: tuple[Sequence[int], int, int, list[bool]] | None = None

    def _live_marks(self, block_hashes: Sequence[int]) -> list[bool]:
        hint, lru = self._hint, self.lru
        if hint is not None and hint[0] is block_hashes and hint[1] == lru.runs_started and hint[2] == len(lru):
            return hint[3]
        return list(map(lru.latest.__contains__, block_hashes))

    def add(self, block_hashes: Sequence[int], pod: str, now_s: float) -> None:
        lru = self.lru
        lru.expire(now_s)
        new = list(compress(block_hashes, map(not_, self._live_marks(block_hashes))))
        self._hint = None
        seq = lru.touch(block_hashes, now_s)
        self._created.update(zip(new, repeat(seq)))
        seen = self._seen.get(pod)
        if seen is None:
            seen = self._seen[pod] = {}
        seen.update(zip(block_hashes, repeat(seq)))
        self._collect(pod)

    def match(self, block_hashes: Sequence[int], pods: Sequence[str], now_s: float) -> dict[str, int]:
        """Matched blocks per pod among ``pods`` (pods with no match are absent)."""
        lru = self.lru
        lru.expire(now_s)
        marks = self._live_marks(block_hashes)
        self._hint = (block_hashes, lru.runs_started, len(lru), marks)
        try:
            live = marks.index(False)
        except ValueError:
            live = len(marks)
        out: dict[str, int] = {}
        if live == 0:
            return out
        chain = block_hashes[:live]
        created = self._created
        first = created[chain[0]]
        born: list[int] | None = None
        for pod in pods:
            seen = self._seen.get(pod)
            if seen is None or seen.get(chain[0], 0) < first:
                continue
            if born is None:
                born = list(map(created.__getitem__, chain))
            held = list(map(ge, map(seen.get, chain, repeat(0)), born))
            try:
                out[pod] = held.index(False)
            except ValueError:
                out[pod] = live
        return out

    def __len__(self) -> int:
        return len(self.lru)

    def _collect(self, pod: str) -> None:
        """Drop bookkeeping of dead entries once it outgrows the table (amortised O(1))."""
        latest = self.lru.latest
        limit = 2 * max(len(latest), 1024)
        if len(self._created) > limit:
            self._created = {h: self._created[h] for h in latest}
        seen = self._seen[pod]
        if len(seen) > limit:
            created = self._created
            self._seen[pod] = {h: s for h, s in seen.items() if h in latest and s >= created[h]}


def sample_std(values: Sequence[float]) -> float:
    n = len(values)
    if n <= 1:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


class AIBrixPrefixCachePicker(Picker):
    def __init__(self, params: AIBrixPrefixCacheParams) -> None:
        self.params = params
        self._rng = random.Random(params.seed)
        g = params.block_group
        self._aibrix_blocks_per_block = BLOCK * params.chars_per_token / params.block_chars
        capacity = max(1, int(params.block_number / (self._aibrix_blocks_per_block * g)))
        self.table = AIBrixPrefixTable(capacity, params.eviction_duration_s)

    def match_percent(self, matched_blocks: int, prompt_tokens: int) -> int:
        total = int(prompt_tokens * self.params.chars_per_token) // self.params.block_chars
        if total <= 0:
            return 0
        return min(100, int(matched_blocks * self._aibrix_blocks_per_block) * 100 // total)

    def pick(
        self, request: RequestView, candidates: Sequence[InstanceView], totals: Sequence[float], now_s: float
    ) -> Pick:
        p = self.params
        ids = [c.instance_id for c in candidates]
        running = [c.inflight_requests for c in candidates]
        lo = min(running)
        ready = ids
        if max(running) - lo > p.imbalance_abs_count:
            ready = [i for i, r in zip(ids, running, strict=True) if r == lo]
        g = p.block_group
        keys = request.block_hashes if g == 1 else request.block_hashes[g - 1 :: g]
        matched = {i: m * g for i, m in self.table.match(keys, ready, now_s).items()}
        percent = {i: self.match_percent(m, request.prompt_tokens) for i, m in matched.items()}
        position = {iid: k for k, iid in enumerate(ids)}
        pct = [percent.get(i, 0) / 100.0 for i in ids]
        cached = [matched.get(i, 0) * BLOCK for i in ids]
        if percent:
            bound = sum(running) / len(running) + p.standard_deviation_factor * sample_std(running)
            ranked = sorted(percent, key=lambda i: (-percent[i], running[position[i]]))
            for iid in ranked:
                r = running[position[iid]]
                if r <= bound:
                    tied = [i for i in ranked if percent[i] == percent[iid] and running[position[i]] == r]
                    chosen = tied[self._rng.randrange(len(tied))] if len(tied) > 1 else iid
                    return Pick(position[chosen], 1.0 / len(tied), scores=pct, cached_tokens=cached)
        least = [k for k, r in enumerate(running) if r == lo]
        index = least[self._rng.randrange(len(least))] if len(least) > 1 else least[0]
        return Pick(index, 1.0 / len(least), scores=pct, cached_tokens=cached)

    def on_picked(self, request: RequestView, instance_id: str, now_s: float) -> None:
        g = self.params.block_group
        keys = request.block_hashes if g == 1 else request.block_hashes[g - 1 :: g]
        self.table.add(keys, instance_id, now_s)
