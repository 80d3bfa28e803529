"""An approximate prefix-cache index over chained block hashes: which instance probably holds
which prompt blocks, learnt from the router's own past decisions (llm-d's approximate prefix
index, Dynamo's approximate mode, the estimated-TTFT heuristic).

Relation kept: block hash → instances, stored per instance. An add records that an instance
now holds a whole prompt prefix. Per instance an optional LRU capacity (blocks) and an
optional TTL (seconds since the block was last added) bound what counts as present. The
capacity is either one for all instances (``capacity_per_instance``) or set per instance
(:meth:`BlockPrefixIndex.set_capacity`, e.g. from the KV blocks the engine reports), which
models the engine evicting a prefix long before a TTL would expire it. Matching
is greedy longest-prefix per instance: an instance matches block j only if it also matches
blocks 0..j-1 (it stops at its own first miss).

Cost (prompts may have 5,000+ blocks; this is on the decision path):
- Chained hashes make a stored set *prefix-closed* (block j present ⇒ blocks 0..j-1 present)
  whenever eviction never drops a block before its descendants: always without capacity, and
  with capacity when adds are leaf-first (the engine's order). A match is then a binary
  search, O(log n) lookups per instance. llm-d adds root-first (``evict_root_first=True``): its
  LRU evicts a prompt's first blocks first, stranding the rest, and the match is a C-level
  scan of the prompt (O(n), cheap per block).
- With capacity, blocks live in an exact :class:`~lodestar.policy.chain_lru.ChainLRU` (one
  C-level dict update per add).
- Without capacity (TTL only), an add writes only the blocks the instance did not hold and
  refreshes the held prefix only if its oldest block's credited time is more than
  ``refresh_slack_s`` old (default TTL/8); new blocks are credited with that time, which keeps
  credited times non-increasing along every chain (hence prefix-closed validity). A block
  therefore expires between ``ttl_s − refresh_slack_s`` and ``ttl_s`` after it was last added,
  and an add touches O(new blocks + log n) entries instead of all n.

Not thread-safe. Times must not go backwards.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from itertools import repeat

from lodestar.policy.chain_lru import ChainLRU


def held_prefix(block_hashes: Sequence[int], held: Container[int]) -> int:
    """Length of the longest prefix of ``block_hashes`` inside ``held``, for a prefix-closed
    ``held`` (block j held ⇒ blocks 0..j-1 held): a binary search, O(log n) lookups."""
    n = len(block_hashes)
    if n == 0 or block_hashes[0] not in held:
        return 0
    if block_hashes[-1] in held:
        return n
    lo, hi = 1, n - 1  # block lo-1 is held, block hi is not
    while lo < hi:
        mid = (lo + hi) // 2
        if block_hashes[mid] in held:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _fresh_prefix(block_hashes: Sequence[int], store: dict[int, float], held: int, cutoff: float) -> int:
    """Of the ``held`` stored leading blocks, how many are newer than ``cutoff``: credited times
    never increase along a chain, so this is a binary search on the times."""
    if store[block_hashes[0]] <= cutoff:
        return 0
    lo, hi = 1, held - 1  # block lo-1 is fresh, block hi is not
    while lo < hi:
        mid = (lo + hi) // 2
        if store[block_hashes[mid]] > cutoff:
            lo = mid + 1
        else:
            hi = mid
    return lo


class _Fresh:
    """``h in _Fresh(store, cutoff)``: h is stored with a credited time after ``cutoff``."""

    __slots__ = ("cutoff", "store")

    def __init__(self, store: dict[int, float], cutoff: float) -> None:
        self.store = store
        self.cutoff = cutoff

    def __contains__(self, h: object) -> bool:
        t = self.store.get(h)  # type: ignore[call-overload]
        return t is not None and t > self.cutoff


class BlockPrefixIndex:
    """Per-instance sets of block hashes with LRU capacity and TTL."""

    def __init__(
        self,
        capacity_per_instance: int | None = None,
        ttl_s: float | None = None,
        evict_root_first: bool = False,
        refresh_slack_s: float | None = None,
    ) -> None:
        if capacity_per_instance is not None and capacity_per_instance < 1:
            raise ValueError(f"capacity_per_instance must be >= 1, got {capacity_per_instance}")
        if ttl_s is not None and ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        self.capacity_per_instance = capacity_per_instance
        self.ttl_s = ttl_s
        self.evict_root_first = evict_root_first
        if refresh_slack_s is None:
            refresh_slack_s = ttl_s / 8 if ttl_s is not None else 0.0
        if ttl_s is not None and not 0 <= refresh_slack_s < ttl_s:
            raise ValueError(f"refresh_slack_s must be in [0, ttl_s), got {refresh_slack_s}")
        self.refresh_slack_s = refresh_slack_s
        self._lrus: dict[str, ChainLRU] = {}  # with capacity
        self._capacities: dict[str, int] = {}  # per-instance capacity (overrides the shared one)
        self._stores: dict[str, dict[int, float]] = {}  # without capacity: block → credited time
        self._last_prune_s: float | None = None

    # --- writes ----------------------------------------------------------------------------

    def add(self, instance_id: str, block_hashes: Sequence[int], now_s: float) -> None:
        """Record that ``instance_id`` now holds the prompt prefix ``block_hashes``."""
        lru = self._lrus.get(instance_id)
        if lru is None and self.capacity_per_instance is not None:
            lru = self._lrus[instance_id] = ChainLRU(
                self.capacity_per_instance, self.ttl_s, root_first=self.evict_root_first
            )
        if lru is not None:
            lru.touch(block_hashes, now_s)
            return
        self._maybe_prune(now_s)
        if not block_hashes:
            return
        store = self._stores.get(instance_id)
        if store is None:
            store = self._stores[instance_id] = {}
        if self.ttl_s is None:
            k = held_prefix(block_hashes, store)
            store.update(zip(block_hashes[k:], repeat(now_s)))
            return
        k = held_prefix(block_hashes, _Fresh(store, now_s - self.ttl_s))
        if k == 0 or now_s - store[block_hashes[k - 1]] >= self.refresh_slack_s:
            store.update(zip(block_hashes, repeat(now_s)))
        else:
            store.update(zip(block_hashes[k:], repeat(store[block_hashes[k - 1]])))

    def set_capacity(self, instance_id: str, blocks: int, now_s: float) -> None:
        """Bound ``instance_id`` to ``blocks`` (LRU, the engine's leaf-first order unless
        ``evict_root_first``). A no-op when unchanged; a smaller capacity evicts at once; blocks
        held so far are kept, oldest evicted first."""
        if blocks < 1:
            raise ValueError(f"capacity must be >= 1 block, got {blocks}")
        if self._capacities.get(instance_id) == blocks:
            return
        self._capacities[instance_id] = blocks
        lru = self._lrus.get(instance_id)
        if lru is not None:
            lru.resize(blocks)
            return
        lru = self._lrus[instance_id] = ChainLRU(blocks, self.ttl_s, root_first=self.evict_root_first)
        store = self._stores.pop(instance_id, None)
        if store:
            cutoff = -float("inf") if self.ttl_s is None else now_s - self.ttl_s
            live = [h for h, t in sorted(store.items(), key=lambda kv: -kv[1]) if t > cutoff]
            # one run, newest first: the LRU evicts from the run's end (oldest) first
            lru.touch(live if not self.evict_root_first else live[::-1], now_s)

    def capacity(self, instance_id: str) -> int | None:
        """The LRU capacity (blocks) bounding ``instance_id``, if any."""
        return self._capacities.get(instance_id, self.capacity_per_instance)

    def remove_instance(self, instance_id: str) -> None:
        self._lrus.pop(instance_id, None)
        self._stores.pop(instance_id, None)
        self._capacities.pop(instance_id, None)

    # --- reads -----------------------------------------------------------------------------

    def match(self, block_hashes: Sequence[int], instance_ids: Sequence[str], now_s: float) -> list[int]:
        """Matched prefix length in blocks of ``block_hashes`` for each of ``instance_ids``."""
        out = [0] * len(instance_ids)
        if not block_hashes:
            return out
        cutoff = None if self.ttl_s is None else now_s - self.ttl_s
        lrus = self._lrus
        for k, iid in enumerate(instance_ids):
            lru = lrus.get(iid)
            if lru is not None:
                lru.expire(now_s)
                # the LRU's live dict: C-level membership tests in the binary search
                live = lru.latest
                if not live:
                    continue
                out[k] = lru.live_prefix(block_hashes) if self.evict_root_first else held_prefix(block_hashes, live)
                continue
            store = self._stores.get(iid)
            if not store:
                continue
            held = held_prefix(block_hashes, store)  # C-level dict lookups
            if cutoff is not None and held and store[block_hashes[held - 1]] <= cutoff:
                held = _fresh_prefix(block_hashes, store, held, cutoff)
            out[k] = held
        return out

    def size(self, instance_id: str, now_s: float | None = None) -> int:
        """Blocks stored for ``instance_id`` (only unexpired ones if ``now_s`` is given)."""
        lru = self._lrus.get(instance_id)
        if lru is not None:
            if now_s is not None:
                lru.expire(now_s)
            return len(lru)
        store = self._stores.get(instance_id, {})
        if now_s is None or self.ttl_s is None:
            return len(store)
        cutoff = now_s - self.ttl_s
        return sum(1 for t in store.values() if t > cutoff)

    def instances(self) -> list[str]:
        return sorted(set(self._lrus) | set(self._stores))

    # --- housekeeping ----------------------------------------------------------------------

    def _maybe_prune(self, now_s: float) -> None:
        """Drop expired blocks once per TTL period (amortised O(1) per added block)."""
        if self.ttl_s is None:
            return
        if self._last_prune_s is None:
            self._last_prune_s = now_s
        elif now_s - self._last_prune_s >= self.ttl_s:
            self._last_prune_s = now_s
            self.prune(now_s)

    def prune(self, now_s: float) -> None:
        """Drop every expired block (no-op without TTL)."""
        if self.ttl_s is None:
            return
        cutoff = now_s - self.ttl_s
        for iid in list(self._stores):
            kept = {h: t for h, t in self._stores[iid].items() if t > cutoff}
            if kept:
                self._stores[iid] = kept
            else:
                del self._stores[iid]
        for lru in self._lrus.values():
            lru.expire(now_s)
