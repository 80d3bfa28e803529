"""Dynamo KV-router cost with overlap credit, hand-computed:
cost = prefill_load_scale · max(0, (active_prefill + prompt)/16 − credit·overlap) + decode_blocks
+ decode_active_request_weight · active_requests; lowest wins, ties random."""

from __future__ import annotations

import math
from typing import Any

import pytest
from policy_helpers import chain, request, shipped, view

from lodestar.policy.contracts import Outcome, Policy
from lodestar.policy.pickers.softmax import softmax_probabilities
from lodestar.policy.scorers.dynamo_kv import DynamoKVParams, worker_logit

P4 = chain(1, 2, 3, 4)  # 64 tokens
P8 = chain(1, 2, 3, 4, 5, 6, 7, 8)  # 128 tokens, extends P4


@pytest.mark.parametrize(
    ("case", "params", "inputs", "cost"),
    [
        # inputs: active prefill tokens, prompt tokens, overlap blocks, decode blocks, active requests
        ("idle-no-overlap", {}, (0, 128, 0, 8, 0), 16.0),  # 128/16 + 8
        ("overlap-credit", {}, (0, 128, 4, 8, 1), 12.0),  # 8 − 4 + 8
        ("queued-prefill", {}, (64, 128, 4, 8, 1), 16.0),  # (64+128)/16 − 4 + 8
        ("credit-clamped-at-zero", {}, (0, 32, 4, 2, 0), 2.0),  # max(0, 2 − 4) + 2
        ("half-credit", {"overlap_score_credit": 0.5}, (0, 128, 4, 8, 0), 14.0),  # 8 − 2 + 8
        ("prefill-scale", {"prefill_load_scale": 2.0}, (0, 128, 4, 8, 0), 16.0),  # 2·(8 − 4) + 8
        ("active-request-weight", {"decode_active_request_weight": 3.0}, (0, 128, 0, 8, 2), 22.0),  # 8 + 8 + 6
    ],
)
def test_worker_logit(case: str, params: dict[str, Any], inputs: tuple[int, int, int, int, int], cost: float) -> None:
    prefill, prompt, overlap, decode, active = inputs
    got = worker_logit(
        DynamoKVParams(**params),
        active_prefill_tokens=prefill,
        prompt_tokens=prompt,
        overlap_blocks=overlap,
        decode_cost_blocks=decode,
        active_requests=active,
    )
    assert got == pytest.approx(cost)


def test_worker_logit_decay_scales_the_credit() -> None:
    got = worker_logit(
        DynamoKVParams(),
        active_prefill_tokens=0,
        prompt_tokens=128,
        overlap_blocks=4,
        decode_cost_blocks=8,
        active_requests=0,
        decay=0.5,
    )
    assert got == pytest.approx(14.0)  # 8 − 0.5·4 + 8


def _prime(policy: Policy) -> None:
    """Route P4 to b alone: b now has overlap 4 blocks, 64 uncached prefill tokens pending,
    4 active decode blocks and 1 active request."""
    policy.decide(request("prime", blocks=P4), [view("b")], 0.0)


def test_pending_prefill_cancels_the_overlap_credit_into_a_random_tie() -> None:
    policy = shipped("dynamo-kv", seed=1)
    _prime(policy)
    d = policy.decide(request("r", blocks=P8), [view("a"), view("b")], 1.0)
    # a: (0+128)/16 − 0 + (0 + 8) = 16;  b: (64+128)/16 − 4 + (4 + 8 − 4) = 16
    assert d.features["a"]["dynamo-kv-cost.cost_blocks"] == 16.0
    assert d.features["b"]["dynamo-kv-cost.cost_blocks"] == 16.0
    assert d.propensity == 0.5


def test_first_token_clears_pending_prefill_and_the_credit_wins() -> None:
    policy = shipped("dynamo-kv", seed=1)
    _prime(policy)
    policy.on_first_token("prime", "b", 0.5)
    d = policy.decide(request("r", blocks=P8), [view("a"), view("b")], 1.0)
    # b: 128/16 − 4 + (4 + 4) = 12 < a: 16
    assert d.instance_id == "b" and d.propensity == 1.0
    assert d.features["b"]["dynamo-kv-cost.cost_blocks"] == 12.0
    assert d.cached_prefix_tokens == 64
    assert d.scores == {"a": 0.0, "b": 1.0}


def test_outcome_frees_decode_blocks_but_overlap_stays_until_the_ttl() -> None:
    policy = shipped("dynamo-kv", seed=1)
    _prime(policy)
    policy.on_outcome(Outcome("prime", "b", 64, 4, 0.1, 0.01, 0.3), 0.6)
    d = policy.decide(request("r", blocks=P8), [view("a"), view("b")], 1.0)
    assert d.features["b"]["dynamo-kv-cost.cost_blocks"] == 12.0  # 128/16 − 4 + (0 + 8)
    d = policy.decide(request("late", blocks=chain(9)), [view("c")], 200.0)  # 120 s TTL passed
    d = policy.decide(request("r2", blocks=P8), [view("a"), view("b")], 200.0)
    assert d.features["b"]["dynamo-kv-cost.overlap_blocks"] == 0.0


def test_half_credit() -> None:
    policy = shipped("dynamo-kv", seed=1, dynamo_kv_cost={"overlap_score_credit": 0.5})
    _prime(policy)
    policy.on_first_token("prime", "b", 0.5)
    d = policy.decide(request("r", blocks=P8), [view("a"), view("b")], 1.0)
    assert d.features["b"]["dynamo-kv-cost.cost_blocks"] == 14.0  # 8 − 2 + 8
    assert d.instance_id == "b"


def test_temperature_samples_with_dynamo_probabilities() -> None:
    policy = shipped("dynamo-kv", seed=1, softmax={"temperature": 1.0})
    _prime(policy)
    policy.on_first_token("prime", "b", 0.5)
    d = policy.decide(request("r", blocks=P8), [view("a"), view("b")], 1.0)
    # costs a 16, b 12 → p_b = exp(0)/(exp(−1) + exp(0)) with normalised costs (T = 1)
    p_a, p_b = softmax_probabilities([0.0, 1.0], 1.0)
    assert d.propensity == pytest.approx(p_b if d.instance_id == "b" else p_a)
    assert p_b == pytest.approx(1 / (1 + math.exp(-1)))
