"""Prefix hit rate between two scrapes: deltas, idle intervals, counter resets."""

from __future__ import annotations

import pytest

from lodestar_collector.hitrate import PrefixCounters, counters_of, prefix_hit_rate

C = PrefixCounters

CASES = [
    pytest.param(None, C(10, 20), None, id="first-scrape"),
    pytest.param(C(10, 20), None, None, id="counters-gone"),
    pytest.param(C(10, 20), C(10, 20), None, id="no-queries-in-interval"),
    pytest.param(C(10, 20), C(40, 80), 0.5, id="half"),
    pytest.param(C(10, 20), C(10, 30), 0.0, id="all-misses"),
    pytest.param(C(10, 20), C(20, 30), 1.0, id="all-hits"),
    pytest.param(C(9600, 11220), C(9600 + 300, 11220 + 400), 0.75, id="emulator-sized"),
    pytest.param(C(500, 1000), C(30, 40), 0.75, id="reset-queries-and-hits"),
    pytest.param(C(500, 1000), C(0, 0), None, id="reset-to-zero"),
    pytest.param(C(500, 1000), C(10, 1200), 10 / 1200, id="hits-went-down-means-reset"),
    pytest.param(C(0, 0), C(50, 40), 1.0, id="clamped-to-one"),
]


@pytest.mark.parametrize(("previous", "current", "expected"), CASES)
def test_prefix_hit_rate(
    previous: PrefixCounters | None, current: PrefixCounters | None, expected: float | None
) -> None:
    got = prefix_hit_rate(previous, current)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected)


def test_counters_need_both_values() -> None:
    assert counters_of(1, 2) == C(1, 2)
    assert counters_of(None, 2) is None
    assert counters_of(1, None) is None
