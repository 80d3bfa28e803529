"""Estimated TTFT = (pending uncached prefill tokens + this request's uncached tokens) /
nominal prefill speed; lowest wins."""

from __future__ import annotations

import pytest
from policy_helpers import chain, request, shipped, view

from lodestar.policy.contracts import Outcome, Policy

PROMPT = chain(*range(62))  # 62 blocks = 992 tokens; with 8 more tokens the prompt is 1000
SPEEDS = {"prefill_tokens_per_s": {"a": 1000.0, "b": 4000.0}}


def _policy() -> Policy:
    return shipped("estimated-ttft", seed=0, estimated_ttft=SPEEDS)


def _ttft(policy: Policy, now: float = 1.0) -> tuple[str, dict[str, float]]:
    d = policy.decide(request("r", blocks=PROMPT, tokens=1000), [view("a"), view("b")], now)
    return d.instance_id, {i: f["estimated-ttft.predicted_ttft_s"] for i, f in d.features.items()}


def test_faster_hardware_wins_when_idle() -> None:
    choice, ttft = _ttft(_policy())
    assert ttft == pytest.approx({"a": 1.0, "b": 0.25})
    assert choice == "b"


def test_pending_prefill_then_first_token_then_cached_prefix() -> None:
    policy = _policy()
    policy.decide(request("big", blocks=chain(*range(500, 750)), tokens=4000), [view("b")], 0.0)
    choice, ttft = _ttft(policy)
    assert ttft == pytest.approx({"a": 1.0, "b": (4000 + 1000) / 4000})
    assert choice == "a"
    policy.on_first_token("big", "b", 1.5)
    choice, ttft = _ttft(policy, 2.0)
    assert ttft["b"] == pytest.approx(0.25) and choice == "b"


def test_cached_prefix_counts_only_uncached_tokens() -> None:
    policy = _policy()
    policy.decide(request("warm", blocks=PROMPT, tokens=1000), [view("a")], 0.0)
    policy.on_outcome(Outcome("warm", "a", 1000, 10, 0.5, 0.01, 0.6), 0.6)
    choice, ttft = _ttft(policy)
    assert ttft["a"] == pytest.approx((1000 - 992) / 1000)  # 8 uncached tokens at 1000 tok/s
    assert choice == "a"


def test_default_speed_applies_to_unknown_instances() -> None:
    policy = shipped("estimated-ttft", estimated_ttft={"default_prefill_tokens_per_s": 500.0})
    d = policy.decide(request("r", blocks=PROMPT, tokens=1000), [view("a"), view("z")], 0.0)
    assert d.features["z"]["estimated-ttft.predicted_ttft_s"] == pytest.approx(2.0)
    assert d.propensity == 0.5  # equal predictions tie
