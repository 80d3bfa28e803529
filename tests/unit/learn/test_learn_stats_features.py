"""Self-measured statistics and per-candidate features (hand-computed)."""

from __future__ import annotations

import math

import pytest

from lodestar.learn.features import FEATURE_NAMES, FeatureBuilder
from lodestar.learn.stats import PRIOR_PREFILL_TOKENS_PER_S, FleetStats
from lodestar.policy.contracts import InstanceView, Outcome, RequestView


def test_prefill_speed_is_a_ratio_of_sums_and_unknown_instances_take_the_median() -> None:
    stats = FleetStats(alpha=0.5)
    assert stats.snapshot("x")[0] == pytest.approx(math.log(PRIOR_PREFILL_TOKENS_PER_S))
    stats.observe("a", 1000, ttft_s=1.0, tpot_s=0.02)  # first sample: 1000 tok/s
    stats.observe("a", 3000, ttft_s=1.0, tpot_s=0.02)  # sums: (1000+0.5*2000)/(1+0) = 2000 tok/s
    stats.observe("b", 8000, ttft_s=1.0, tpot_s=0.04)
    stats.observe("c", 4000, ttft_s=1.0, tpot_s=None)
    speed_a, decode_a, _, conf_a = stats.snapshot("a")
    assert math.exp(speed_a) == pytest.approx(2000.0)
    assert math.exp(decode_a) == pytest.approx(0.02)
    assert conf_a == pytest.approx(2 / 20)
    # unknown instance: the median of a (2000), b (8000), c (4000) → 4000; decode median of 0.02, 0.04
    speed_new, decode_new, _, conf_new = stats.snapshot("new")
    assert math.exp(speed_new) == pytest.approx(4000.0)
    assert math.exp(decode_new) == pytest.approx(math.sqrt(0.02 * 0.04))
    assert conf_new == 0.0
    with pytest.raises(ValueError, match="alpha"):
        FleetStats(alpha=0.0)


def _req(rid: str, prompt: int, hashes: tuple[int, ...] = ()) -> RequestView:
    return RequestView(request_id=rid, model="m", prompt_tokens=prompt, block_hashes=hashes, expected_output_tokens=99)


def _inst(iid: str, **kw: object) -> InstanceView:
    return InstanceView(instance_id=iid, model="m", **kw)  # type: ignore[arg-type]


def test_features_follow_the_routers_own_accounting() -> None:
    fb = FeatureBuilder(index_ttl_s=100.0, index_stride=4)
    hashes = tuple(range(10))  # 160 tokens of full blocks; the index keeps blocks 3 and 7
    first = fb.build(_req("r1", 170, hashes), [_inst("a"), _inst("b")], 0.0)
    assert first.uncached_tokens == [170, 170] and first.pending_tokens == [0, 0]
    fb.on_picked(_req("r1", 170, hashes), "a", uncached=170, pending=0, now_s=0.0)
    second = fb.build(_req("r2", 200, (*hashes, 99)), [_inst("a", num_running=3, state_age_s=0.5), _inst("b")], 1.0)
    row_a, row_b = second.row(0), second.row(1)
    assert second.uncached_tokens == [200 - 128, 200]  # a holds r1's first 8 blocks at stride 4
    assert second.pending_tokens == [170, 0]  # r1 still waits for its first token on a
    assert row_a["cached_frac"] == pytest.approx(128 / 200)
    assert row_a["running_log"] == pytest.approx(math.log1p(3))
    assert row_a["state_age_s"] == 0.5 and row_b["state_age_s"] == 10.0  # never scraped → capped
    speed = PRIOR_PREFILL_TOKENS_PER_S
    assert row_a["work_ttft_log"] == pytest.approx(math.log((170 + 72) / speed + 1e-3))
    assert row_b["work_ttft_log"] == pytest.approx(math.log(200 / speed + 1e-3))
    assert row_a["expected_output_log"] == pytest.approx(math.log1p(99))
    fb.on_first_token("r1")
    assert fb.build(_req("r3", 10), [_inst("a")], 2.0).pending_tokens == [0]
    fb.on_outcome(Outcome("r1", "a", 170, 5, ttft_s=0.5, tpot_s=0.01, e2e_s=0.6))
    assert math.exp(fb.stats.snapshot("a")[0]) == pytest.approx(170 / 0.5)


def test_ablation_switches() -> None:
    hashes = tuple(range(4))
    fb = FeatureBuilder(use_prefix_index=False, use_instance_stats=False, zeroed=["running_log", "cached_frac"])
    with pytest.raises(ValueError, match="index_stride"):
        FeatureBuilder(index_stride=0)
    fb.on_picked(_req("r1", 64, hashes), "a", uncached=64, pending=0, now_s=0.0)
    feats = fb.build(_req("r2", 64, hashes), [_inst("a", num_running=5)], 0.0)
    assert feats.uncached_tokens == [64]  # the prefix index is ignored
    assert feats.row(0)["running_log"] == 0.0
    fb.on_outcome(Outcome("r1", "a", 64, 1, ttft_s=0.1, tpot_s=None, e2e_s=0.1))
    assert fb.stats.snapshot("a")[3] == 0.0  # no statistics kept
    with pytest.raises(ValueError, match="unknown features"):
        FeatureBuilder(zeroed=["colour"])
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES))


def test_engine_reported_kv_size_bounds_the_index_and_measures_kv_pressure() -> None:
    """A prefix that later traffic must have pushed out of the engine's KV cache is not counted
    as cached, and a prompt that does not fit in the free KV shows as pressure."""
    fb = FeatureBuilder(index_ttl_s=100.0, index_stride=1)
    small = [_inst("a", kv_capacity_blocks=8, kv_usage_frac=0.5), _inst("b")]
    first = tuple(range(6))
    fb.on_picked(_req("r1", 96, first), "a", uncached=96, pending=0, now_s=0.0)
    fb.on_picked(_req("r1b", 96, first), "b", uncached=96, pending=0, now_s=0.0)
    later = tuple(range(100, 106))
    fb.build(_req("r2", 96, later), small, 1.0)
    fb.on_picked(_req("r2", 96, later), "a", uncached=96, pending=96, now_s=1.0)  # 12 blocks > 8 on a
    feats = fb.build(_req("r3", 96, first), small, 2.0)
    assert feats.uncached_tokens == [96 - 2 * 16, 0]  # a kept only first's root; b has no size: TTL only
    free_a = 0.5 * 8 * 16
    assert feats.row(0)["kv_demand_log"] == pytest.approx(math.log1p((96 + 96 + 64) / free_a))
    assert feats.row(1)["kv_demand_log"] == 0.0  # size unknown: no pressure claimed
    unbounded = FeatureBuilder(index_ttl_s=100.0, index_stride=1, index_engine_capacity=False)
    unbounded.on_picked(_req("r1", 96, first), "a", uncached=96, pending=0, now_s=0.0)
    unbounded.on_picked(_req("r2", 96, later), "a", uncached=96, pending=0, now_s=1.0)
    assert unbounded.build(_req("r3", 96, first), small, 2.0).uncached_tokens == [0, 96]
