"""SGLang cache-aware: the imbalance switch on both sides of each threshold, the cache
threshold, and both fallbacks — choices computed by hand from sglang-router 0.3.2 defaults
(cache_threshold 0.3, balance_abs_threshold 64, balance_rel_threshold 1.5)."""

from __future__ import annotations

from typing import Any

import pytest
from policy_helpers import chain, request, shipped, view

from lodestar.policy.contracts import Policy
from lodestar.policy.pickers.sglang_cache_aware import is_imbalanced

PROMPT = chain(*range(10))  # 10 blocks, 160 tokens


def _prime(policy: Policy, iid: str, blocks: tuple[int, ...], now: float = 0.0) -> None:
    """Route a request to ``iid`` alone, so SGLang inserts its prompt into ``iid``'s tree."""
    policy.decide(request(f"prime-{iid}-{len(blocks)}", blocks=blocks), [view(iid)], now)


@pytest.mark.parametrize(
    ("case", "loads", "imbalanced"),
    [
        ("abs-over-rel-over", (0, 65), True),
        ("abs-at-threshold", (0, 64), False),
        ("abs-over-rel-at-threshold", (130, 195), False),
        ("abs-over-rel-over-2", (130, 196), True),
        ("rel-over-abs-under", (10, 70), False),
        ("equal", (40, 40), False),
    ],
)
def test_imbalance_rule(case: str, loads: tuple[int, int], imbalanced: bool) -> None:
    assert is_imbalanced(loads, 64, 1.5) is imbalanced


CASES: list[tuple[str, tuple[int, int], int, dict[str, Any], str]] = [
    # (case, (load a, load b), blocks of PROMPT that b holds, params, expected)
    ("imbalanced-goes-to-least-loaded-despite-cache", (0, 65), 10, {}, "a"),
    ("balanced-at-abs-threshold-follows-cache", (0, 64), 10, {}, "b"),
    ("balanced-at-rel-threshold-follows-cache", (130, 195), 10, {}, "b"),
    ("imbalanced-over-rel-threshold", (130, 196), 10, {}, "a"),
    ("imbalanced-least-loaded-is-b", (65, 0), 0, {}, "b"),
    ("match-above-threshold", (0, 5), 4, {}, "b"),  # 64/160 = 0.4 > 0.3
    ("match-at-threshold-falls-back-to-least-loaded", (0, 5), 3, {}, "a"),  # 48/160 = 0.3
    ("no-match-least-loaded", (3, 2), 0, {}, "b"),
    ("no-match-equal-load-first", (2, 2), 0, {}, "a"),
    ("smallest-tree-fallback-ignores-load", (0, 9), 3, {"fallback": "smallest-tree"}, "b"),
    ("threshold-param", (0, 5), 3, {"cache_threshold": 0.25}, "b"),
]


@pytest.mark.parametrize(("case", "loads", "held", "params", "expected"), CASES)
def test_choice(case: str, loads: tuple[int, int], held: int, params: dict[str, Any], expected: str) -> None:
    policy = shipped("sglang-cache-aware", sglang_cache_aware=params)
    if held:
        _prime(policy, "b", PROMPT[:held])
    if params.get("fallback") == "smallest-tree":
        _prime(policy, "a", chain(*range(50, 60)))  # a's tree (10 blocks) is bigger than b's (3)
    d = policy.decide(request("r", blocks=PROMPT), [view("a", inflight=loads[0]), view("b", inflight=loads[1])], 1.0)
    assert d.instance_id == expected
    assert d.propensity == 1.0
    assert d.scores["b"] == pytest.approx(held * 16 / 160)


def test_text_is_inserted_even_when_imbalanced() -> None:
    policy = shipped("sglang-cache-aware")
    imbalanced = [view("a", inflight=0), view("b", inflight=100)]
    assert policy.decide(request("r1", blocks=PROMPT), imbalanced, 0.0).instance_id == "a"
    balanced = [view("a", inflight=5), view("b", inflight=0)]
    d = policy.decide(request("r2", blocks=PROMPT), balanced, 1.0)
    assert d.instance_id == "a"  # full match on a beats b's lower load
    assert d.cached_prefix_tokens == 160


def test_ties_between_holders_go_to_the_longest_holder() -> None:
    policy = shipped("sglang-cache-aware")
    _prime(policy, "c", PROMPT)
    _prime(policy, "b", PROMPT, now=1.0)
    d = policy.decide(request("r", blocks=PROMPT), [view("a"), view("b"), view("c")], 2.0)
    assert d.instance_id == "c"


def test_periodic_eviction_trims_trees_to_max_tree_size() -> None:
    # max_tree_size 320 characters = 5 blocks of 16 tokens × 4 characters
    policy = shipped("sglang-cache-aware", sglang_cache_aware={"max_tree_size": 320, "eviction_interval_s": 60})
    _prime(policy, "a", PROMPT, now=0.0)
    d = policy.decide(request("r1", blocks=PROMPT), [view("a"), view("b", inflight=0)], 30.0)
    assert d.scores["a"] == 1.0  # not yet evicted
    d = policy.decide(request("r2", blocks=PROMPT), [view("a"), view("b")], 61.0)
    assert d.scores["a"] == pytest.approx(5 * 16 / 160)
