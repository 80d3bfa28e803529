"""llm-d default profile: queue-scorer ×2 + kv-cache-utilization-scorer ×2 + prefix-cache-scorer
×3, max-score with random ties — totals computed by hand."""

from __future__ import annotations

import pytest
from policy_helpers import chain, request, shipped, view

from lodestar.policy.contracts import Policy

PROMPT = chain(*range(8))  # 8 blocks


def _prime(policy: Policy, iid: str, blocks: tuple[int, ...]) -> None:
    policy.decide(request(f"prime-{iid}", blocks=blocks), [view(iid)], 0.0)


CASES = [
    # case, waiting (a, b, c), kv (a, b, c), blocks of PROMPT held by b, expected, raw totals (a, b, c)
    # queue: (max−q)/(max−min); kv: 1−u; prefix: held/8; total = 2q + 2kv + 3p, normalised by 7
    ("queue-and-kv", (0, 4, 2), (0.5, 0.25, 0.75), 0, {"a"}, (3.0, 1.5, 1.5)),
    ("prefix-outweighs", (0, 4, 2), (0.5, 0.25, 0.75), 8, {"b"}, (3.0, 4.5, 1.5)),
    ("half-prefix-ties", (0, 4, 2), (0.5, 0.25, 0.75), 4, {"a", "b"}, (3.0, 3.0, 1.5)),
    ("all-queues-equal", (3, 3, 3), (0.5, 0.0, 0.75), 0, {"b"}, (3.0, 4.0, 2.5)),
]


@pytest.mark.parametrize(("case", "waiting", "kv", "held", "expected", "totals"), CASES)
def test_weighted_sum(
    case: str,
    waiting: tuple[int, int, int],
    kv: tuple[float, float, float],
    held: int,
    expected: set[str],
    totals: tuple[float, float, float],
) -> None:
    policy = shipped("llm-d", seed=4)
    if held:
        _prime(policy, "b", PROMPT[:held])
    candidates = [view(i, waiting=w, kv=u) for i, w, u in zip("abc", waiting, kv, strict=True)]
    d = policy.decide(request("r", blocks=PROMPT), candidates, 1.0)
    assert d.scores == pytest.approx({i: t / 7 for i, t in zip("abc", totals, strict=True)})
    assert d.instance_id in expected
    assert d.propensity == pytest.approx(1 / len(expected))
    assert d.features["b"]["prefix-cache-scorer"] == pytest.approx(held / 8)


def test_ties_break_at_random_with_propensity_one_half() -> None:
    policy = shipped("llm-d", seed=11)
    candidates = [view("a", waiting=1, kv=0.5), view("b", waiting=1, kv=0.5), view("c", waiting=3, kv=0.5)]
    seen = {policy.decide(request(f"r{k}", blocks=chain(1000 + k)), candidates, 0.0).instance_id for k in range(40)}
    d = policy.decide(request("x", blocks=chain(5000)), candidates, 0.0)
    assert d.propensity == 0.5
    assert seen == {"a", "b"}


def test_chosen_pod_is_added_after_the_decision_and_prefix_is_capped_at_256_blocks() -> None:
    policy = shipped("llm-d", seed=0)
    long_prompt = chain(*range(300))
    d1 = policy.decide(request("r1", blocks=long_prompt), [view("a"), view("b", waiting=9)], 0.0)
    assert d1.instance_id == "a" and d1.cached_prefix_tokens == 0
    d2 = policy.decide(request("r2", blocks=long_prompt), [view("a", waiting=9), view("b")], 1.0)
    # a: queue 0, kv 1, prefix 256/256 → 2·0 + 2·1 + 3·1 = 5 > b: 2 + 2 + 0 = 4
    assert d2.instance_id == "a"
    assert d2.cached_prefix_tokens == 256 * 16
