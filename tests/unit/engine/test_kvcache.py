"""Paged KV cache: prefix hits, reference counts, LRU eviction order (hand-computed)."""

from __future__ import annotations

import pytest

from lodestar.engine.kvcache import KVCache


def _fill(kv: KVCache, hashes: list[int]) -> list[int]:
    blocks = kv.allocate(len(hashes))
    for b, h in zip(blocks, hashes, strict=True):
        kv.register(b, h)
    return blocks


def test_prefix_hit_stops_at_first_miss() -> None:
    kv = KVCache(num_blocks=8)
    a = _fill(kv, [11, 12, 13])
    kv.free(a)
    assert kv.cached_prefix([11, 12, 99, 13]) == a[:2]
    assert kv.cached_prefix([99, 11]) == []


def test_freed_request_is_evicted_tail_first() -> None:
    kv = KVCache(num_blocks=4)
    a = _fill(kv, [1, 2, 3, 4])
    assert kv.num_free == 0
    kv.free(a)
    assert kv.num_free == 4 and kv.num_cached == 4
    (evicted,) = kv.allocate(1)
    assert evicted == a[3]  # the request's last block goes first
    assert kv.cached_prefix([1, 2, 3, 4]) == a[:3]


def test_least_recently_freed_request_is_evicted_first() -> None:
    kv = KVCache(num_blocks=4)
    a = _fill(kv, [1, 2])
    b = _fill(kv, [5, 6])
    kv.free(a)
    kv.free(b)
    kv.allocate(2)
    assert kv.cached_prefix([1, 2]) == []
    assert kv.cached_prefix([5, 6]) == b


def test_touch_takes_cached_blocks_out_of_the_free_queue_and_counts_references() -> None:
    kv = KVCache(num_blocks=4)
    a = _fill(kv, [1, 2])
    kv.free(a)
    assert kv.num_free == 4
    hits = kv.cached_prefix([1, 2])
    assert kv.can_allocate(hits, 2) and not kv.can_allocate(hits, 3)
    kv.touch(hits)
    kv.touch(hits)  # a second request shares them
    assert kv.num_free == 2 and kv.usage_frac == 0.5
    kv.free(hits)
    assert kv.num_free == 2  # still referenced once
    kv.free(hits)
    assert kv.num_free == 4
    with pytest.raises(RuntimeError, match="freed twice"):
        kv.free(hits)


def test_counters_and_limits() -> None:
    kv = KVCache(num_blocks=2)
    kv.record_query(100, 32)
    kv.record_query(50, 0)
    assert (kv.query_tokens, kv.hit_tokens) == (150, 32)
    with pytest.raises(MemoryError):
        kv.allocate(3)
    with pytest.raises(ValueError, match="num_blocks"):
        KVCache(num_blocks=0)
    assert kv.blocks_for(16) == 1 and kv.blocks_for(17) == 2


def test_prefix_caching_off_never_hits() -> None:
    kv = KVCache(num_blocks=4, enable_prefix_caching=False)
    a = _fill(kv, [1, 2])
    kv.free(a)
    assert kv.cached_prefix([1, 2]) == []


def test_first_writer_keeps_a_hash() -> None:
    kv = KVCache(num_blocks=4)
    (a,) = _fill(kv, [7])
    (b,) = _fill(kv, [7])  # same content computed twice concurrently
    kv.free([a])
    kv.free([b])
    assert kv.cached_prefix([7]) == [a]
