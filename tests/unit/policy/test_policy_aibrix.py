"""AIBrix prefix-cache: the running-request load gate (> 8), match percent ordering, and the
mean + 1·std rule (sample std over all ready pods), with least-request fallback."""

from __future__ import annotations

import pytest
from policy_helpers import chain, request, shipped, view

from lodestar.policy.contracts import Policy
from lodestar.policy.pickers.aibrix_prefix_cache import sample_std

PROMPT = chain(*range(10))  # 10 blocks, 160 tokens; k blocks held → percent 10·k


def _prime(policy: Policy, iid: str, blocks: tuple[int, ...]) -> None:
    policy.decide(request(f"prime-{iid}", blocks=blocks), [view(iid)], 0.0)


CASES = [
    # case, running per pod, blocks of PROMPT held per pod, expected pods, propensity
    ("gate-restricts-to-least-running", {"a": 0, "b": 9}, {"b": 10}, {"a"}, 1.0),
    ("gate-not-triggered-at-8", {"a": 0, "b": 8}, {"b": 10}, {"b"}, 1.0),  # mean 4 + std 5.66 ≥ 8
    ("gate-keeps-matching-among-least", {"a": 0, "b": 0, "c": 9}, {"a": 5, "c": 10}, {"a"}, 1.0),
    ("mean-plus-std-rejects-then-least-request", {"a": 0, "b": 0, "c": 0, "d": 6}, {"d": 10}, {"a", "b", "c"}, 1 / 3),
    ("higher-percent-first", {"a": 0, "b": 0, "c": 0}, {"b": 10, "c": 5}, {"b"}, 1.0),
    ("same-percent-fewer-running-first", {"a": 1, "b": 1, "c": 0}, {"b": 10, "c": 10}, {"c"}, 1.0),
    ("same-percent-same-running-random", {"a": 1, "b": 0, "c": 0}, {"b": 10, "c": 10}, {"b", "c"}, 0.5),
    ("bound-skips-to-lower-percent", {"a": 0, "b": 2, "c": 0}, {"b": 10, "c": 5}, {"c"}, 1.0),
    ("no-match-least-request", {"a": 2, "b": 1, "c": 1}, {}, {"b", "c"}, 0.5),
]


@pytest.mark.parametrize(("case", "running", "held", "expected", "propensity"), CASES)
def test_choice(
    case: str, running: dict[str, int], held: dict[str, int], expected: set[str], propensity: float
) -> None:
    policy = shipped("aibrix-prefix-cache", seed=9)
    for iid, n in held.items():
        _prime(policy, iid, PROMPT[:n])
    candidates = [view(i, inflight=r) for i, r in running.items()]
    d = policy.decide(request("r", blocks=PROMPT), candidates, 1.0)
    assert d.instance_id in expected
    assert d.propensity == pytest.approx(propensity)


def test_bound_arithmetic() -> None:
    assert sample_std([0, 0, 0, 6]) == pytest.approx(3.0)  # bound 1.5 + 3 = 4.5 < 6
    assert sample_std([0, 2, 0]) == pytest.approx(1.1547, abs=1e-4)  # bound 1.82 < 2
    assert sample_std([5]) == 0.0


def test_match_percent_is_an_integer_percent_of_prompt_tokens() -> None:
    policy = shipped("aibrix-prefix-cache")
    _prime(policy, "b", PROMPT[:3])
    d = policy.decide(request("r", blocks=PROMPT, tokens=170), [view("a"), view("b")], 1.0)
    assert d.instance_id == "b"
    assert d.scores["b"] == pytest.approx(0.28)  # 3·16·100 // 170 = 28 %
    assert d.cached_prefix_tokens == 48


def test_block_group_trades_granularity_for_speed() -> None:
    policy = shipped("aibrix-prefix-cache", aibrix_prefix_cache={"block_group": 2})
    _prime(policy, "b", PROMPT[:5])  # 5 blocks held: 2 whole groups of 2
    d = policy.decide(request("r", blocks=PROMPT), [view("a"), view("b")], 1.0)
    assert d.instance_id == "b"
    assert d.cached_prefix_tokens == 4 * 16
    assert d.scores["b"] == pytest.approx(0.4)
