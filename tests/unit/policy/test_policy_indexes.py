"""Prefix index, chain LRU, chain union and AIBrix table: eviction order, TTL, and exact
agreement with naive per-block reference models on random workloads."""

from __future__ import annotations

import random
from collections import OrderedDict

import pytest
from policy_helpers import chain

from lodestar.policy.chain_lru import ChainLRU
from lodestar.policy.pickers.aibrix_prefix_cache import AIBrixPrefixTable
from lodestar.policy.prefix_index import BlockPrefixIndex, held_prefix
from lodestar.policy.scorers.ledger import ChainUnion, RequestLedger

A = chain(1, 2, 3)
B = chain(7, 8)
C = chain(9, 9)


def test_match_is_greedy_longest_prefix_per_instance() -> None:
    index = BlockPrefixIndex()
    index.add("x", A, 0.0)
    index.add("y", A[:1], 0.0)
    assert index.match(A, ["x", "y", "z"], 0.0) == [3, 1, 0]
    assert index.match(chain(1, 2, 5), ["x"], 0.0) == [2]
    assert index.match(chain(5, 2, 3), ["x"], 0.0) == [0]  # chained: no match after a miss
    assert index.match((), ["x"], 0.0) == [0]


@pytest.mark.parametrize(
    ("case", "root_first", "expected_a", "expected_b"),
    [
        ("leaf-first-cuts-the-tail", False, 2, 2),
        ("root-first-strands-the-chain", True, 0, 2),  # llm-d: A's first block went first
    ],
)
def test_lru_eviction_order(case: str, root_first: bool, expected_a: int, expected_b: int) -> None:
    index = BlockPrefixIndex(capacity_per_instance=4, evict_root_first=root_first)
    index.add("x", A, 0.0)
    index.add("x", B, 1.0)  # 5 blocks > 4: one of A's goes
    assert index.match(A, ["x"], 2.0) == [expected_a]
    assert index.match(B, ["x"], 2.0) == [expected_b]
    assert index.size("x") == 4


def test_lru_touch_refreshes() -> None:
    index = BlockPrefixIndex(capacity_per_instance=5)
    index.add("x", A, 0.0)
    index.add("x", B, 1.0)
    index.add("x", A, 2.0)  # A most recent
    index.add("x", C, 3.0)  # evicts B (2 blocks)
    assert index.match(A, ["x"], 4.0) == [3]
    assert index.match(B, ["x"], 4.0) == [0]


def test_ttl_expiry_and_refresh_slack() -> None:
    index = BlockPrefixIndex(ttl_s=120.0)  # slack 15 s
    index.add("x", A, 0.0)
    index.add("y", A, 0.0)
    assert index.match(A, ["x", "y"], 119.0) == [3, 3]
    index.add("x", A, 10.0)  # within the slack: not refreshed
    index.add("y", A, 20.0)  # past the slack: refreshed
    assert index.match(A, ["x", "y"], 130.0) == [0, 3]
    assert index.match(A, ["y"], 141.0) == [0]
    assert index.size("x", 130.0) == 0


def test_ttl_new_blocks_expire_with_their_held_prefix() -> None:
    index = BlockPrefixIndex(ttl_s=120.0)
    index.add("x", A[:1], 0.0)
    index.add("x", A, 5.0)  # blocks 2-3 credited with block 1's time (0)
    assert index.match(A, ["x"], 119.0) == [3]
    assert index.match(A, ["x"], 121.0) == [0]
    index.prune(121.0)
    assert index.instances() == []


def test_index_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError, match="capacity_per_instance"):
        BlockPrefixIndex(capacity_per_instance=0)
    with pytest.raises(ValueError, match="ttl_s"):
        BlockPrefixIndex(ttl_s=0)
    with pytest.raises(ValueError, match="refresh_slack_s"):
        BlockPrefixIndex(ttl_s=10, refresh_slack_s=10)


def test_per_instance_capacity_evicts_least_recent_and_keeps_what_was_held() -> None:
    index = BlockPrefixIndex(ttl_s=120.0)
    index.add("x", A, 0.0)  # TTL store, no capacity yet
    index.add("x", B, 1.0)
    index.add("y", A, 0.0)
    index.set_capacity("x", 4, 2.0)  # the engine reports its size: the oldest of x's blocks go
    assert index.capacity("x") == 4 and index.capacity("y") is None
    assert index.match(B, ["x"], 2.0) == [2]
    assert index.match(A, ["x", "y"], 2.0) == [2, 3]  # x lost A's tail (leaf first); y unbounded
    index.add("x", C, 3.0)  # 2 more blocks: A goes entirely
    assert index.match(A, ["x"], 3.0) == [0] and index.match(C, ["x"], 3.0) == [2]
    index.set_capacity("x", 4, 4.0)  # unchanged: a no-op
    index.set_capacity("x", 2, 4.0)  # shrink: B, the older chain, is evicted at once
    assert index.match(B, ["x"], 4.0) == [0] and index.match(C, ["x"], 4.0) == [2]
    assert index.match(C, ["x"], 200.0) == [0]  # the TTL still applies
    index.remove_instance("x")
    assert index.capacity("x") is None
    with pytest.raises(ValueError, match="capacity"):
        index.set_capacity("x", 0, 5.0)


def test_chain_lru_resize() -> None:
    lru = ChainLRU(capacity=6, root_first=False)
    lru.touch(A, 0.0)
    lru.touch(B, 1.0)
    lru.resize(3)
    assert len(lru) == 3 and all(h in lru for h in B) and A[0] in lru and A[2] not in lru
    with pytest.raises(ValueError, match="capacity"):
        lru.resize(0)


def test_held_prefix_binary_search() -> None:
    blocks = list(range(100))
    for k in (0, 1, 37, 99, 100):
        assert held_prefix(blocks, set(range(k))) == k


# --- exactness against naive references -----------------------------------------------------


class RefLRU:
    """Per-block LRU: touch each block in order; idle expiry."""

    def __init__(self, capacity: int | None, ttl: float | None, root_first: bool) -> None:
        self.capacity, self.ttl, self.root_first = capacity, ttl, root_first
        self.od: OrderedDict[int, float] = OrderedDict()

    def expire(self, now: float) -> None:
        if self.ttl is not None:
            for h in [h for h, t in self.od.items() if t <= now - self.ttl]:
                del self.od[h]

    def touch(self, blocks: tuple[int, ...], now: float) -> None:
        self.expire(now)
        for h in blocks if self.root_first else reversed(blocks):
            self.od.pop(h, None)
            self.od[h] = now
            if self.capacity is not None and len(self.od) > self.capacity:
                self.od.popitem(last=False)


def _workload(rng: random.Random, n: int) -> list[tuple[int, ...]]:
    return [chain(rng.randrange(3), rng.randrange(3), *rng.sample(range(20), rng.randrange(6))) for _ in range(n)]


@pytest.mark.parametrize("root_first", [True, False])
@pytest.mark.parametrize(("capacity", "ttl"), [(7, None), (20, None), (None, 5.0), (12, 4.0)])
def test_chain_lru_equals_per_block_lru(root_first: bool, capacity: int | None, ttl: float | None) -> None:
    rng = random.Random(hash((root_first, capacity, ttl)) & 0xFFFF)
    lru, ref = ChainLRU(capacity, ttl, root_first), RefLRU(capacity, ttl, root_first)
    for k, blocks in enumerate(_workload(rng, 300)):
        now = k * 0.5
        lru.touch(blocks, now)
        ref.touch(blocks, now)
        lru.expire(now)
        ref.expire(now)
        assert set(lru.latest) == set(ref.od), f"diverged at step {k}"


@pytest.mark.parametrize("long_tails", [0, 150])
def test_chain_union_equals_refcounts(long_tails: int) -> None:
    rng = random.Random(3 + long_tails)
    union: ChainUnion = ChainUnion()
    active: list[tuple[int, ...]] = []
    counts: dict[int, int] = {}
    for k in range(400):
        if active and (rng.random() < 0.45 or len(active) > 12):
            blocks = active.pop(rng.randrange(len(active)))
            union.remove(blocks)
            for h in blocks:
                counts[h] -= 1
                if not counts[h]:
                    del counts[h]
        else:
            blocks = _workload(rng, 1)[0]
            if long_tails and rng.random() < 0.5:  # long shared stems, to cross the 64-block scan chunks
                blocks = chain(rng.randrange(2), *range(rng.randrange(long_tails)), *rng.sample(range(9), 2))
            active.append(blocks)
            union.add(blocks)
            for h in blocks:
                counts[h] = counts.get(h, 0) + 1
        assert set(union.children) == set(counts), f"diverged at step {k}"


def test_request_ledger_accounting() -> None:
    ledger = RequestLedger(track_blocks=True)
    ledger.add("r1", "a", 100, A)
    ledger.add("r2", "a", 50, A[:2])
    assert (ledger.pending_prefill_tokens("a"), ledger.active_requests("a"), ledger.active_blocks("a")) == (150, 2, 3)
    assert ledger.active_prefix("a", chain(1, 2, 9)) == 2
    ledger.first_token("r1")
    ledger.first_token("r1")
    ledger.finish("r1")
    assert (ledger.pending_prefill_tokens("a"), ledger.active_requests("a"), ledger.active_blocks("a")) == (50, 1, 2)
    ledger.finish("r1")
    ledger.finish("r2")
    ledger.first_token("ghost")
    assert (ledger.pending_prefill_tokens("a"), ledger.active_blocks("a"), len(ledger)) == (0, 0, 0)


def test_aibrix_table_equals_a_per_block_reference() -> None:
    rng = random.Random(5)
    pods = ["p0", "p1", "p2"]
    table = AIBrixPrefixTable(capacity=15, ttl_s=6.0)
    ref: OrderedDict[int, tuple[float, set[str]]] = OrderedDict()
    for k, blocks in enumerate(_workload(rng, 400)):
        now = k * 0.25
        for h in [h for h, (t, _) in ref.items() if t <= now - 6.0]:
            del ref[h]
        expected: dict[str, int] = {}
        for p in pods:
            j = 0
            while j < len(blocks) and blocks[j] in ref and p in ref[blocks[j]][1]:
                j += 1
            if j:
                expected[p] = j
        assert table.match(blocks, pods, now) == expected, f"diverged at step {k}"
        pod = rng.choice(pods)
        table.add(blocks, pod, now)
        for h in blocks:
            entry = ref.pop(h, None)
            holders = entry[1] if entry is not None else set()
            ref[h] = (now, holders | {pod})
            if len(ref) > 15:
                ref.popitem(last=False)
