"""SGLang's approximate multi-tenant radix tree, over 16-token prompt blocks instead of
characters (sgl-project/sglang ``sgl-model-gateway/src/policies/tree.rs``).

What is kept from SGLang's tree: one tree shared by all tenants (workers), each node recording
which tenants hold it and when each last touched it; insert of a prompt for a tenant; longest
match per tenant; a per-tenant size; ``evict_tenant_by_size`` removing a tenant's least
recently used *leaves* (nodes it holds that no child of its holds) until its size is at most
the limit, a parent becoming a leaf in turn; and the tie rule of a prefix match (among tenants
holding the deepest matched node, the tenant that has held it longest — SGLang keeps the
node's first tenant as ``last_tenant``).

How it differs: a node is one 16-token block keyed by its chained hash (the hash identifies
the whole prefix, so the tree needs no edge splitting), where SGLang's nodes are runs of
characters; sizes are counted in blocks and converted to characters by the caller. As in
SGLang's tree since late 2025, an insert stamps the time on the node where the prompt ends and
on nodes the tenant newly joins, not on every node of the path; SGLang's probabilistic
(1 in 8) refresh on match is not modelled. Not thread-safe.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence


class _Node:
    __slots__ = ("children", "parent", "tenants")

    def __init__(self, parent: int | None) -> None:
        self.parent = parent
        self.tenants: dict[str, float] = {}  # insertion order = order tenants joined
        self.children: dict[str, int] = {}  # tenant → number of child nodes holding it


class ApproxRadixTree:
    """Block-level multi-tenant radix tree (chained block hash → node)."""

    def __init__(self) -> None:
        self._nodes: dict[int, _Node] = {}
        self._size: dict[str, int] = {}

    def insert(self, block_hashes: Sequence[int], tenant: str, now_s: float) -> None:
        """Record that ``tenant`` now holds the prompt ``block_hashes``."""
        self._size.setdefault(tenant, 0)
        n = len(block_hashes)
        if n == 0:
            return
        k = self._held(block_hashes, tenant)
        nodes = self._nodes
        added = 0
        for j in range(k, n):
            h = block_hashes[j]
            node = nodes.get(h)
            if node is None:
                node = nodes[h] = _Node(block_hashes[j - 1] if j else None)
            node.tenants[tenant] = now_s
            if j:
                parent = nodes[block_hashes[j - 1]]
                parent.children[tenant] = parent.children.get(tenant, 0) + 1
            added += 1
        self._size[tenant] += added
        nodes[block_hashes[-1]].tenants[tenant] = now_s

    def match(self, block_hashes: Sequence[int], tenants: Sequence[str]) -> list[int]:
        """Matched prefix length in blocks for each of ``tenants``."""
        return [self._held(block_hashes, t) for t in tenants]

    def first_holder(self, block_hash: int, tenants: Iterable[str]) -> str | None:
        """Among ``tenants``, the one that has held node ``block_hash`` longest (None if none)."""
        node = self._nodes.get(block_hash)
        if node is None:
            return None
        allowed = set(tenants)
        for t in node.tenants:
            if t in allowed:
                return t
        return None

    def size_blocks(self, tenant: str) -> int:
        return self._size.get(tenant, 0)

    def tenants(self) -> list[str]:
        return sorted(self._size)

    def __len__(self) -> int:
        return len(self._nodes)

    def evict_tenant_by_size(self, max_blocks: int) -> None:
        """Remove least recently touched leaves of every tenant above ``max_blocks`` until it
        is at most ``max_blocks`` (SGLang's periodic eviction)."""
        over = {t for t, s in self._size.items() if s > max_blocks}
        if not over:
            return
        heap: list[tuple[float, int, str, int]] = []
        seq = 0
        for h, node in self._nodes.items():
            for t, ts in node.tenants.items():
                if t in over and not node.children.get(t):
                    heap.append((ts, seq, t, h))
                    seq += 1
        heapq.heapify(heap)
        nodes = self._nodes
        while heap:
            _, _, t, h = heapq.heappop(heap)
            if self._size[t] <= max_blocks:
                continue
            leaf = nodes.get(h)
            if leaf is None or t not in leaf.tenants or leaf.children.get(t):
                continue
            del leaf.tenants[t]
            self._size[t] -= 1
            parent_hash = leaf.parent
            if not leaf.tenants:
                del nodes[h]
            if parent_hash is None:
                continue
            parent = nodes[parent_hash]
            left = parent.children[t] - 1
            if left:
                parent.children[t] = left
                continue
            del parent.children[t]
            if t in parent.tenants:
                heapq.heappush(heap, (parent.tenants[t], seq, t, parent_hash))
                seq += 1

    def remove_tenant(self, tenant: str) -> None:
        """Forget ``tenant`` entirely (a removed worker)."""
        for h in list(self._nodes):
            node = self._nodes[h]
            node.tenants.pop(tenant, None)
            node.children.pop(tenant, None)
            if not node.tenants:
                del self._nodes[h]
        self._size.pop(tenant, None)

    def _held(self, block_hashes: Sequence[int], tenant: str) -> int:
        """Longest prefix of ``block_hashes`` held by ``tenant`` (binary search: what a tenant
        holds is prefix-closed, since inserts write whole prefixes and eviction takes leaves)."""
        n = len(block_hashes)
        if n == 0:
            return 0
        nodes = self._nodes
        node = nodes.get(block_hashes[0])
        if node is None or tenant not in node.tenants:
            return 0
        node = nodes.get(block_hashes[-1])
        if node is not None and tenant in node.tenants:
            return n
        lo, hi = 1, n - 1
        while lo < hi:
            mid = (lo + hi) // 2
            node = nodes.get(block_hashes[mid])
            if node is not None and tenant in node.tenants:
                lo = mid + 1
            else:
                hi = mid
        return lo
