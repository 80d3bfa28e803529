"""SGLang router's cache-aware policy as a picker — the ``sglang-cache-aware`` baseline
(sgl-project/sglang ``sgl-model-gateway/src/policies/cache_aware.rs`` @b93974f and
``policies/tree.rs``; defaults of the ``sglang-router`` 0.3.2 Python CLI, released 2026-01-15).

SGLang: load = the router's own in-flight request count per worker. The system is imbalanced
iff (max − min) > balance_abs_threshold AND max > balance_rel_threshold · min; then the
least-loaded worker wins (first on ties) and the request text is still inserted into its
tree. Otherwise the character radix tree's longest match gives match_rate = matched chars /
prompt chars; if match_rate > cache_threshold the best-matching worker wins, else the
fallback. Every ``eviction_interval_secs`` each worker's tree is cut to ``max_tree_size``
characters by removing least recently used leaves.

Which fallback: least-loaded, as the sglang-router 0.3.2 wheel does — verified live by
``tests/integration/test_sglang_parity.py`` (the real router, ``--policy cache_aware``, in front
of emulated instances: a cache miss with equal loads stays on the first worker even though its
tree is the largest, and moves to the least-loaded worker when loads differ). The tree-size
fallback (``get_smallest_tenant``, the "death spiral" of issues #14305/#14532, replaced in PR
#14650) reproduces older wheels with ``fallback: smallest-tree``. Ties (equal loads) go to the
first candidate in the host's order; SGLang's order is its worker registry's iteration order,
which is random per router start (``GET /workers`` on the router lists it), so a host that wants
SGLang's exact choices offers candidates in that order.

Defaults (0.3.2 CLI): cache_threshold 0.3, balance_abs_threshold 64, balance_rel_threshold
1.5, eviction_interval_secs 60, max_tree_size 2**26 characters (the Rust struct defaults
differ: 0.5 / 32 / 1.1 / 30 / 10,000).

Ours: the tree (:mod:`lodestar.policy.radix_tree`) is over 16-token blocks, converted to
characters at ``chars_per_token`` = 4 (one block = 64 characters) for ``max_tree_size``; the
match rate is matched tokens / prompt tokens (= characters / characters at a fixed ratio;
the partial last block never matches, and a prefix shared up to the middle of a block counts
only its whole blocks — SGLang counts every shared character, so 3.5 shared blocks of 10 are a
0.35 hit there and a 0.30 miss here: the one difference the live test shows). Loads,
thresholds and the fallback are computed over the candidates that passed the filters (SGLang
takes min/max over all workers, healthy or not); the best match is sought among these
candidates (SGLang may pick a stale worker and then falls back to the first healthy one).
Eviction runs at the first decision after each interval of host time, not on a thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from lodestar import tokenizer
from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Pick, Picker
from lodestar.policy.params import PluginParams
from lodestar.policy.radix_tree import ApproxRadixTree

BLOCK = tokenizer.BLOCK_SIZE


class SGLangCacheAwareParams(PluginParams):
    cache_threshold: float = Field(default=0.3, ge=0.0, le=1.0)
    balance_abs_threshold: int = Field(default=64, ge=0)
    balance_rel_threshold: float = Field(default=1.5, ge=0.0)
    eviction_interval_s: float = Field(default=60.0, ge=0.0, description="0 disables eviction")
    max_tree_size: int = Field(default=2**26, ge=0, description="characters per worker")
    chars_per_token: float = Field(default=4.0, gt=0.0)
    fallback: Literal["least-loaded", "smallest-tree"] = "least-loaded"


def is_imbalanced(loads: Sequence[int], abs_threshold: int, rel_threshold: float) -> bool:
    hi, lo = max(loads), min(loads)
    return hi - lo > abs_threshold and hi > rel_threshold * lo


class SGLangCacheAwarePicker(Picker):
    def __init__(self, params: SGLangCacheAwareParams) -> None:
        self.params = params
        self.tree = ApproxRadixTree()
        self._max_tree_blocks = int(params.max_tree_size // (BLOCK * params.chars_per_token))
        self._next_eviction_s: float | None = None

    def pick(
        self, request: RequestView, candidates: Sequence[InstanceView], totals: Sequence[float], now_s: float
    ) -> Pick:
        self._maybe_evict(now_s)
        p = self.params
        ids = [c.instance_id for c in candidates]
        loads = [c.inflight_requests for c in candidates]
        hashes = request.block_hashes
        matched = self.tree.match(hashes, ids)
        prompt = request.prompt_tokens
        rates = [m * BLOCK / prompt if prompt > 0 else 0.0 for m in matched]
        least_loaded = loads.index(min(loads))
        if is_imbalanced(loads, p.balance_abs_threshold, p.balance_rel_threshold):
            index = least_loaded
        else:
            best = max(matched)
            if best > 0 and best * BLOCK / prompt > p.cache_threshold:
                holder = self.tree.first_holder(
                    hashes[best - 1], [i for i, m in zip(ids, matched, strict=True) if m == best]
                )
                index = ids.index(holder) if holder is not None else matched.index(best)
            elif p.fallback == "least-loaded":
                index = least_loaded
            else:
                sizes = [self.tree.size_blocks(i) for i in ids]
                index = sizes.index(min(sizes))
        return Pick(
            index,
            scores=rates,
            cached_tokens=[m * BLOCK for m in matched],
            features={"match_rate": rates, "load": [float(x) for x in loads]},
        )

    def on_picked(self, request: RequestView, instance_id: str, now_s: float) -> None:
        self.tree.insert(request.block_hashes, instance_id, now_s)

    def _maybe_evict(self, now_s: float) -> None:
        interval = self.params.eviction_interval_s
        if interval <= 0:
            return
        if self._next_eviction_s is None:
            self._next_eviction_s = now_s + interval
            return
        if now_s < self._next_eviction_s:
            return
        while self._next_eviction_s <= now_s:
            self._next_eviction_s += interval
        self.tree.evict_tenant_by_size(self._max_tree_blocks)
