"""An exact LRU (with optional idle TTL) over block hashes that are always touched as whole
prompt chains — the shape of every router-side prefix index.

A plain per-block LRU costs several Python-level operations per block and per touch; here a
touch is one C-level ``dict.update`` (block → touch sequence number) plus an O(1) append of the
chain to a queue of *runs*. A block's recency is the sequence number of the last run that
touched it; eviction walks the oldest runs in their touch order and drops each block whose
last touch is that run (older occurrences are stale and skipped). The result is exactly the
LRU order of touching the chain's blocks one by one: root-first (``root_first=True``, what
llm-d's and AIBrix's indexers do, so a chain's first blocks are evicted first) or leaf-first
(the engine's order, so a chain is cut from its tail). Idle expiry drops the blocks whose last
touch is older than ``ttl_s``. Times must not go backwards. Not thread-safe.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from itertools import compress, repeat
from operator import eq

_CHUNK = 256


class ChainLRU:
    """Block hashes with LRU ``capacity`` (None: unbounded) and idle ``ttl_s`` (None: none)."""

    def __init__(self, capacity: int | None = None, ttl_s: float | None = None, root_first: bool = True) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        if ttl_s is not None and ttl_s <= 0:
            raise ValueError(f"ttl_s must be > 0, got {ttl_s}")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.root_first = root_first
        #: live block → sequence number of the run that last touched it
        self.latest: dict[int, int] = {}
        self._runs: deque[tuple[int, float, tuple[int, ...]]] = deque()
        self._offset = 0  # blocks of the oldest run already scanned by eviction
        self._seq = 0

    def touch(self, chain: Sequence[int], now_s: float) -> int:
        """Touch every block of ``chain`` (root first in the chain); returns the run number."""
        self.expire(now_s)
        self._seq += 1
        seq = self._seq
        if not chain:
            return seq
        order = tuple(chain) if self.root_first else tuple(reversed(chain))
        self.latest.update(zip(order, repeat(seq)))
        if self.capacity is not None or self.ttl_s is not None:
            self._runs.append((seq, now_s, order))
        if self.capacity is not None and len(self.latest) > self.capacity:
            self._evict(len(self.latest) - self.capacity)
        return seq

    def resize(self, capacity: int) -> None:
        """Change the capacity; shrinking evicts the least recently touched blocks at once."""
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        if len(self.latest) > capacity:
            self._evict(len(self.latest) - capacity)

    def expire(self, now_s: float) -> None:
        """Drop blocks not touched for ``ttl_s`` (no-op without TTL)."""
        if self.ttl_s is None:
            return
        cutoff = now_s - self.ttl_s
        runs = self._runs
        while runs and runs[0][1] <= cutoff:
            seq, _, order = runs.popleft()
            self._drop(seq, order, self._offset, len(order))
            self._offset = 0

    def _evict(self, excess: int) -> None:
        runs = self._runs
        while excess > 0 and runs:
            seq, _, order = runs[0]
            dropped, end = self._drop(seq, order, self._offset, excess)
            excess -= dropped
            if end >= len(order):
                runs.popleft()
                self._offset = 0
            else:
                self._offset = end

    def _drop(self, seq: int, order: tuple[int, ...], start: int, limit: int) -> tuple[int, int]:
        """Drop, in order from ``start``, up to ``limit`` blocks of run ``seq`` that it touched
        last (C-level loops over chunks); returns how many were dropped and where it stopped."""
        latest = self.latest
        n = len(order)
        dropped = 0
        pos = start
        while pos < n and dropped < limit:
            chunk = order[pos : pos + _CHUNK]
            mine = list(compress(range(len(chunk)), map(eq, map(latest.get, chunk), repeat(seq))))
            take = limit - dropped
            if len(mine) > take:
                mine = mine[:take]
                end = pos + mine[-1] + 1
            else:
                end = pos + len(chunk)
            deque(map(latest.__delitem__, map(chunk.__getitem__, mine)), maxlen=0)
            dropped += len(mine)
            pos = end
        return dropped, pos

    @property
    def runs_started(self) -> int:
        """How many touches there were (changes whenever the content may have grown)."""
        return self._seq

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self.latest

    def __len__(self) -> int:
        return len(self.latest)

    def live_prefix(self, chain: Sequence[int]) -> int:
        """Leading blocks of ``chain`` that are live (a scan: C-level, O(n))."""
        if not chain or chain[0] not in self.latest:
            return 0
        marks = list(map(self.latest.__contains__, chain))
        try:
            return marks.index(False)
        except ValueError:
            return len(marks)
