"""Token bucket, stream slots and the per-client table, with time passed in."""

from __future__ import annotations

import math

import pytest

from lodestar_gateway.ratelimit import (
    ANONYMOUS,
    ClientLimits,
    ClientTable,
    Limits,
    StreamSlots,
    TokenBucket,
    retry_after_header,
)


@pytest.mark.parametrize(
    ("case", "rate", "burst", "times", "expected"),
    [
        ("burst then refused", 1.0, 3, [0, 0, 0, 0], [0, 0, 0, 1.0]),
        ("refill at the rate", 2.0, 1, [0, 0, 0.5, 0.5], [0, 0.5, 0, 0.5]),
        ("partial refill: wait for the rest", 1.0, 1, [0, 0.25], [0, 0.75]),
        ("never more than burst", 10.0, 2, [0, 100, 100, 100], [0, 0, 0, 0.1]),
        ("steady at the rate", 4.0, 1, [0, 0.25, 0.5, 0.75, 1.0], [0, 0, 0, 0, 0]),
        ("clock going backwards adds nothing", 1.0, 1, [10, 5, 10.5], [0, 1.0, 0.5]),
        ("refused requests take nothing", 1.0, 1, [0, 0.5, 0.9, 1.0], [0, 0.5, 0.1, 0]),
    ],
)
def test_token_bucket(case: str, rate: float, burst: int, times: list[float], expected: list[float]) -> None:
    bucket = TokenBucket(rate, burst, times[0])
    got = [bucket.take(t) for t in times]
    assert got == pytest.approx(expected), case


def test_token_bucket_admits_rate_times_duration_plus_burst() -> None:
    bucket = TokenBucket(50.0, 10, 0.0)
    admitted = sum(bucket.take(i * 0.001) == 0.0 for i in range(10_000))  # 10 s, 1000 tries/s
    assert admitted == 10 + 500 - 1 or admitted == 10 + 500


@pytest.mark.parametrize(
    ("case", "limit", "ops", "expected"),
    [
        ("under the limit", 2, ["a", "a"], [True, True]),
        ("at the limit", 2, ["a", "a", "a"], [True, True, False]),
        ("release frees a slot", 1, ["a", "a", "r", "a"], [True, False, None, True]),
        ("unlimited", None, ["a"] * 5, [True] * 5),
    ],
)
def test_stream_slots(case: str, limit: int | None, ops: list[str], expected: list[bool | None]) -> None:
    slots = StreamSlots(limit)
    got = [slots.acquire() if op == "a" else slots.release() for op in ops]
    assert got == expected, case
    assert slots.active == sum(1 for g in got if g is True) - ops.count("r")


def test_release_without_acquire_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="without a matching acquire"):
        StreamSlots(1).release()


@pytest.mark.parametrize(
    ("wait_s", "header"), [(0.001, "1"), (0.5, "1"), (1.0, "1"), (1.01, "2"), (59.9, "60"), (0.0, "1")]
)
def test_retry_after_is_whole_seconds_at_least_one(wait_s: float, header: str) -> None:
    assert retry_after_header(wait_s) == header


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"rate_rps": 0.0}, "rate_rps must be a positive number"),
        ({"rate_rps": -1.0}, "rate_rps must be a positive number"),
        ({"rate_rps": math.inf}, "rate_rps must be a positive number"),
        ({"rate_rps": math.nan}, "rate_rps must be a positive number"),
        ({"burst": 0}, "burst must be at least 1"),
        ({"max_streams": 0}, "max_streams must be at least 1"),
    ],
)
def test_bad_limits_are_refused(kwargs: dict[str, float], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        Limits(**kwargs)  # type: ignore[arg-type]


def test_client_without_rate_is_always_admitted() -> None:
    client = ClientLimits("a", Limits(), 0.0)
    assert all(client.admit(0.0) == 0.0 for _ in range(1000))


def test_client_table_defaults_overrides_and_anonymous() -> None:
    default, special = Limits(rate_rps=1.0, burst=1), Limits(rate_rps=100.0, burst=5, max_streams=1)
    table = ClientTable(["alice", "bob"], default, {"bob": special}, 0.0)
    assert table["alice"].admit(0.0) == 0.0 and table["alice"].admit(0.0) > 0.0
    assert [table["bob"].admit(0.0) for _ in range(5)] == [0.0] * 5
    assert table["bob"].streams.acquire() and not table["bob"].streams.acquire()
    assert table.open_streams == 1
    # Buckets are per client: alice's being empty does not touch bob's.
    assert table["bob"].admit(1.0) == 0.0
    anonymous = ClientTable([], default, {}, 0.0)
    assert list(anonymous.clients) == [ANONYMOUS]


def test_client_table_refuses_limits_for_unknown_keys() -> None:
    with pytest.raises(ValueError, match="limits for unknown keys: carol"):
        ClientTable(["alice"], Limits(), {"carol": Limits()}, 0.0)
