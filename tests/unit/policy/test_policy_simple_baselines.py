"""Hand-computed choices of the simple baselines: random, round-robin, least-request,
power-of-two, least-kv."""

from __future__ import annotations

from collections import Counter

import pytest
from policy_helpers import chain, request, shipped, view

from lodestar.policy.pickers.power_of_two import win_probability


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_random_has_propensity_one_over_n_and_reaches_everyone(n: int) -> None:
    policy = shipped("random", seed=3)
    candidates = [view(f"i{k}") for k in range(n)]
    seen = Counter()
    for k in range(60 * n):
        d = policy.decide(request(f"r{k}"), candidates, 0.0)
        assert d.propensity == pytest.approx(1.0 / n)
        seen[d.instance_id] += 1
    assert set(seen) == {c.instance_id for c in candidates}


def test_round_robin_cycles_and_carries_on_when_candidates_change() -> None:
    policy = shipped("round-robin")
    abc = [view("a"), view("b"), view("c")]
    got = [policy.decide(request(f"r{k}"), abc, 0.0).instance_id for k in range(4)]
    assert got == ["a", "b", "c", "a"]
    ab = [view("a"), view("b")]
    got = [policy.decide(request(f"s{k}"), ab, 0.0).instance_id for k in range(3)]
    assert got == ["a", "b", "a"]  # counter 4, 5, 6 over two candidates
    assert policy.decide(request("t"), abc, 0.0).propensity == 1.0


@pytest.mark.parametrize(
    ("case", "inflight", "expected", "propensity"),
    [
        ("fewest-wins", [3, 1, 2], {"b"}, 1.0),
        ("tie-is-random", [1, 1, 2], {"a", "b"}, 0.5),
        ("all-idle", [0, 0, 0], {"a", "b", "c"}, 1 / 3),
        ("unhealthy-ignored", [5, 0, 1], {"c"}, 1.0),
    ],
)
def test_least_request(case: str, inflight: list[int], expected: set[str], propensity: float) -> None:
    candidates = [view(i, inflight=c) for i, c in zip("abc", inflight, strict=True)]
    if case == "unhealthy-ignored":
        candidates[1] = view("b", inflight=0, healthy=False)
    d = shipped("least-request", seed=1).decide(request("r"), candidates, 0.0)
    assert d.instance_id in expected
    assert d.propensity == pytest.approx(propensity)


@pytest.mark.parametrize(
    ("case", "loads", "index", "probability"),
    [
        ("single", [4], 0, 1.0),
        ("two-fewer-wins", [1, 2], 0, 1.0),
        ("two-more-loses", [1, 2], 1, 0.0),
        ("two-tie-first-drawn", [3, 3], 0, 0.5),
        ("three-least", [0, 5, 5], 0, 4 / 6),
        ("three-tied-pair", [0, 5, 5], 1, 1 / 6),
        ("three-distinct-middle", [0, 1, 2], 1, 2 / 6),
    ],
)
def test_power_of_two_win_probability(case: str, loads: list[int], index: int, probability: float) -> None:
    assert win_probability(loads, index) == pytest.approx(probability)


def test_power_of_two_reports_the_exact_propensity_and_prefers_the_least_loaded() -> None:
    policy = shipped("power-of-two", seed=5)
    candidates = [view("a", inflight=0), view("b", inflight=5), view("c", inflight=5)]
    seen = Counter()
    for k in range(600):
        d = policy.decide(request(f"r{k}"), candidates, 0.0)
        index = "abc".index(d.instance_id)
        assert d.propensity == pytest.approx(win_probability([0, 5, 5], index))
        seen[d.instance_id] += 1
    assert seen["a"] > seen["b"] + seen["c"]  # expected 2/3 vs 1/3


@pytest.mark.parametrize(
    ("case", "kv", "expected", "propensity"),
    [
        ("lowest-usage", [0.5, 0.2, 0.9], {"b"}, 1.0),
        ("tie", [0.25, 0.25, 0.75], {"a", "b"}, 0.5),
    ],
)
def test_least_kv(case: str, kv: list[float], expected: set[str], propensity: float) -> None:
    candidates = [view(i, kv=u) for i, u in zip("abc", kv, strict=True)]
    d = shipped("least-kv", seed=2).decide(request("r", blocks=chain(1)), candidates, 0.0)
    assert d.instance_id in expected
    assert d.propensity == pytest.approx(propensity)
    assert d.scores == pytest.approx({"a": 1 - kv[0], "b": 1 - kv[1], "c": 1 - kv[2]})
