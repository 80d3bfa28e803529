"""Router-side accounting of the requests a plugin itself routed, fed by its hooks: per
instance the uncached prompt tokens still in prefill (until the first token), the requests in
flight, and optionally the union of their prompt blocks (a prefix shared by several active
requests counts once, as Dynamo's active-sequence tracking does).

The block union is kept as a trie of chained hashes with per-block child counts and per-chain
end counts, so adding a request costs O(log n + new blocks) and finishing one costs
O(blocks only it held), not O(prompt length)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import ne, or_

from lodestar.policy.prefix_index import held_prefix


@dataclass(slots=True)
class _Entry:
    instance_id: str
    uncached_tokens: int
    blocks: tuple[int, ...]
    prefilling: bool = True


class ChainUnion:
    """The union of a set of prompt chains (a multiset: a chain may be added twice)."""

    __slots__ = ("children", "ends")

    def __init__(self) -> None:
        self.children: dict[int, int] = {}  # member block → number of member children
        self.ends: dict[int, int] = {}  # block → number of chains ending there

    def add(self, chain: Sequence[int]) -> None:
        n = len(chain)
        if n == 0:
            return
        children = self.children
        k = held_prefix(chain, children)
        if k < n:
            # new blocks k..n-1: each has one member child (the next), the last none
            children.update(zip(chain[k : n - 1], repeat(1)))
            children[chain[n - 1]] = 0
            if k:
                children[chain[k - 1]] += 1
        self.ends[chain[-1]] = self.ends.get(chain[-1], 0) + 1

    def remove(self, chain: Sequence[int]) -> None:
        """Remove one earlier-added copy of ``chain`` (O(blocks only it held))."""
        n = len(chain)
        if n == 0:
            return
        ends, children = self.ends, self.children
        last = chain[-1]
        left = ends[last] - 1
        if left:
            ends[last] = left
            return
        del ends[last]
        if children[last]:
            return
        # the blocks only this chain held: after the last block (above the end) that branches
        # (≠ 1 member child) or ends another chain; scanned backwards in C-level chunks
        m = 0
        hi = n - 1
        while hi > 0:
            lo = max(0, hi - 64)
            body = chain[lo:hi]
            keep = list(map(or_, map(ne, map(children.__getitem__, body), repeat(1)), map(ends.__contains__, body)))
            if True in keep:
                m = hi - keep[::-1].index(True)
                break
            hi = lo
        deque(map(children.__delitem__, chain[m:]), maxlen=0)
        if m:
            children[chain[m - 1]] -= 1

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self.children

    def __len__(self) -> int:
        return len(self.children)


@dataclass(slots=True)
class _Load:
    prefill_tokens: int = 0
    requests: int = 0
    blocks: ChainUnion = field(default_factory=ChainUnion)


class RequestLedger:
    """Not thread-safe. Unknown or repeated request ids in ``first_token`` / ``finish`` are
    ignored; adding a request id that is still open first finishes the old entry."""

    def __init__(self, track_blocks: bool = False) -> None:
        self.track_blocks = track_blocks
        self._entries: dict[str, _Entry] = {}
        self._loads: dict[str, _Load] = {}

    def add(self, request_id: str, instance_id: str, uncached_tokens: int, block_hashes: Sequence[int] = ()) -> None:
        if request_id in self._entries:
            self.finish(request_id)
        blocks = tuple(block_hashes) if self.track_blocks else ()
        self._entries[request_id] = _Entry(instance_id, uncached_tokens, blocks)
        load = self._loads.get(instance_id)
        if load is None:
            load = self._loads[instance_id] = _Load()
        load.prefill_tokens += uncached_tokens
        load.requests += 1
        load.blocks.add(blocks)

    def first_token(self, request_id: str) -> None:
        entry = self._entries.get(request_id)
        if entry is None or not entry.prefilling:
            return
        entry.prefilling = False
        self._loads[entry.instance_id].prefill_tokens -= entry.uncached_tokens

    def finish(self, request_id: str) -> None:
        entry = self._entries.pop(request_id, None)
        if entry is None:
            return
        load = self._loads[entry.instance_id]
        if entry.prefilling:
            load.prefill_tokens -= entry.uncached_tokens
        load.requests -= 1
        load.blocks.remove(entry.blocks)

    def pending_prefill_tokens(self, instance_id: str) -> int:
        load = self._loads.get(instance_id)
        return load.prefill_tokens if load is not None else 0

    def active_requests(self, instance_id: str) -> int:
        load = self._loads.get(instance_id)
        return load.requests if load is not None else 0

    def active_blocks(self, instance_id: str) -> int:
        load = self._loads.get(instance_id)
        return len(load.blocks) if load is not None else 0

    def active_prefix(self, instance_id: str, block_hashes: Sequence[int]) -> int:
        """How many leading blocks of ``block_hashes`` are already active on ``instance_id``."""
        load = self._loads.get(instance_id)
        return held_prefix(block_hashes, load.blocks) if load is not None else 0

    def __len__(self) -> int:
        return len(self._entries)
