"""Paged KV cache with automatic prefix caching, as vLLM's block pool does it.

- Fixed-size blocks (16 tokens by default), each with a reference count.
- A full prompt block, once computed, is registered under its chained hash; a later request
  whose prompt starts with the same blocks reuses them (a prefix hit).
- Freed blocks go to the tail of a free queue and keep their hash: they stay reusable until
  allocation pops them from the head (least recently freed first), which evicts the hash.
  A request's blocks are freed tail-first, so its last blocks are evicted before its first.
- Counters in tokens, as vLLM's ``prefix_cache_queries`` / ``prefix_cache_hits``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence


class KVCache:
    """Block pool of ``num_blocks`` blocks. Not thread-safe; owned by one engine."""

    def __init__(self, num_blocks: int, block_size: int = 16, enable_prefix_caching: bool = True) -> None:
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.enable_prefix_caching = enable_prefix_caching
        self._ref = [0] * num_blocks
        self._hash: list[int | None] = [None] * num_blocks
        self._by_hash: dict[int, int] = {}
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self.query_tokens = 0
        self.hit_tokens = 0

    # --- inspection ------------------------------------------------------------------------

    @property
    def num_free(self) -> int:
        """Blocks that can be allocated (free, cached or not)."""
        return len(self._free)

    @property
    def num_used(self) -> int:
        return self.num_blocks - len(self._free)

    @property
    def usage_frac(self) -> float:
        """Fraction of blocks held by running requests (vLLM ``kv_cache_usage_perc``)."""
        return self.num_used / self.num_blocks

    @property
    def num_cached(self) -> int:
        return len(self._by_hash)

    def blocks_for(self, n_tokens: int) -> int:
        return -(-n_tokens // self.block_size)

    def cached_prefix(self, block_hashes: Sequence[int]) -> list[int]:
        """Block ids of the longest cached prefix of ``block_hashes`` (no side effects)."""
        if not self.enable_prefix_caching:
            return []
        out: list[int] = []
        by_hash = self._by_hash
        for h in block_hashes:
            block = by_hash.get(h)
            if block is None:
                break
            out.append(block)
        return out

    # --- mutation --------------------------------------------------------------------------

    def record_query(self, query_tokens: int, hit_tokens: int) -> None:
        self.query_tokens += query_tokens
        self.hit_tokens += hit_tokens

    def can_allocate(self, hit_blocks: Sequence[int], n_new: int) -> bool:
        """Whether ``n_new`` fresh blocks fit after touching ``hit_blocks`` (hits that sit in the
        free queue stop being allocatable once touched)."""
        reclaimed = sum(1 for b in hit_blocks if self._ref[b] == 0)
        return n_new <= len(self._free) - reclaimed

    def touch(self, blocks: Sequence[int]) -> None:
        """Take a reference on cached blocks (prefix hits)."""
        for b in blocks:
            if self._ref[b] == 0:
                del self._free[b]
            self._ref[b] += 1

    def allocate(self, n: int) -> list[int]:
        """Pop ``n`` blocks from the free-queue head, evicting their cached hashes.

        Raises MemoryError when fewer than ``n`` are free (callers check :meth:`can_allocate`).
        """
        if n > len(self._free):
            raise MemoryError(f"need {n} KV blocks, {len(self._free)} free")
        out: list[int] = []
        free, hashes, by_hash, ref = self._free, self._hash, self._by_hash, self._ref
        for _ in range(n):
            b, _none = free.popitem(last=False)
            h = hashes[b]
            if h is not None:
                hashes[b] = None
                if by_hash.get(h) == b:
                    del by_hash[h]
            ref[b] = 1
            out.append(b)
        return out

    def register(self, block: int, block_hash: int) -> None:
        """Make a computed full block reusable under ``block_hash`` (first writer wins)."""
        if not self.enable_prefix_caching or self._hash[block] is not None:
            return
        if block_hash in self._by_hash:
            return
        self._hash[block] = block_hash
        self._by_hash[block_hash] = block

    def free(self, blocks: Sequence[int]) -> None:
        """Drop one reference on each block; unreferenced ones join the free queue tail, last
        block first (so a request's tail is evicted before its shared prefix)."""
        ref, free = self._ref, self._free
        for b in reversed(blocks):
            ref[b] -= 1
            if ref[b] == 0:
                free[b] = None
            elif ref[b] < 0:
                raise RuntimeError(f"KV block {b} freed twice")
