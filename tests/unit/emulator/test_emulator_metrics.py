"""/metrics rendering, parsed back with prometheus_client's own parser; the fast text writer
compared byte for byte with prometheus_client's own exposition of the same families."""

from __future__ import annotations

import dataclasses
import math

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from lodestar.emulator.exposition import go_float, go_number
from lodestar.emulator.histogram import Histogram, one_two_five
from lodestar.emulator.metrics import (
    EmulatorGauges,
    InstanceMetrics,
    MetricsCollector,
    build_registry,
    render,
)
from lodestar.engine.engine import EngineSnapshot
from lodestar.engine.request import FinishedRequest

# CALIBRATION.md, "vLLM metric names a router scrapes"
CALIBRATION_TTFT_BUCKETS = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560,
]  # fmt: skip
MODEL = "llama-3-8b"


def test_histogram_counts_weighted_observations_into_le_buckets() -> None:
    h = Histogram([0.1, 1.0])
    h.observe(0.1)  # on the bound: that bucket
    h.observe(0.5, n=3)
    h.observe(7.0)
    assert h.cumulative() == [("0.1", 1.0), ("1.0", 4.0), ("+Inf", 5.0)]
    assert (h.count, h.total) == (5, pytest.approx(0.1 + 1.5 + 7.0))


def test_histogram_rejects_unsorted_buckets() -> None:
    with pytest.raises(ValueError, match="ascending"):
        Histogram([1.0, 0.5])


def test_one_two_five_buckets_as_vllm() -> None:
    assert one_two_five(100) == [1, 2, 5, 10, 20, 50, 100]
    assert one_two_five(8192)[-1] == 5000


def _collector(metrics: InstanceMetrics, snap: EngineSnapshot) -> MetricsCollector:
    return MetricsCollector(
        metrics,
        MODEL,
        lambda: snap,
        lambda: EmulatorGauges(
            virtual_time_s=12.5, lag_s=0.002, speed_factor=4.0, fail_fraction=0.5, drop_fraction=0.0, stalled=False
        ),
        cache_info={"block_size": "16", "num_gpu_blocks": "28276", "enable_prefix_caching": "True"},
        info={"instance_id": "h100-sxm-0", "hardware": "H100-SXM", "model": MODEL},
    )


def _render(metrics: InstanceMetrics, snap: EngineSnapshot) -> dict[str, list[Sample]]:
    text = _collector(metrics, snap).text().decode()
    out: dict[str, list[Sample]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def _one(samples: dict[str, list[Sample]], name: str, **labels: str) -> float:
    found = [s.value for s in samples[name] if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]


SNAP = EngineSnapshot(
    num_running=3,
    num_waiting=2,
    kv_usage_frac=0.25,
    prefix_query_tokens=640,
    prefix_hit_tokens=320,
    num_preemptions=1,
    num_gpu_blocks=28276,
)


def test_gauges_and_cache_counters_come_from_the_engine_snapshot() -> None:
    s = _render(InstanceMetrics(max_model_len=8192), SNAP)
    labels = {"model_name": MODEL, "engine": "0"}
    assert _one(s, "vllm:num_requests_running", **labels) == 3
    assert _one(s, "vllm:num_requests_waiting", **labels) == 2
    assert _one(s, "vllm:kv_cache_usage_perc", **labels) == 0.25
    assert _one(s, "vllm:gpu_cache_usage_perc", **labels) == 0.25
    assert _one(s, "vllm:prefix_cache_queries_total", **labels) == 640
    assert _one(s, "vllm:prefix_cache_hits_total", **labels) == 320
    assert _one(s, "vllm:num_preemptions_total", **labels) == 1
    cache = s["vllm:cache_config_info"][0]
    assert cache.labels["block_size"] == "16" and cache.labels["num_gpu_blocks"] == "28276"
    assert cache.value == 1
    info = s["lodestar_emulator_info"][0]
    assert info.labels["hardware"] == "H100-SXM"
    assert _one(s, "lodestar_emulator_speed_factor") == 4.0
    assert _one(s, "lodestar_emulator_fail_fraction") == 0.5


def test_every_vllm_series_has_model_name_and_engine_labels() -> None:
    s = _render(InstanceMetrics(max_model_len=8192), SNAP)
    vllm = [x for name, xs in s.items() if name.startswith("vllm:") and name != "vllm:cache_config_info" for x in xs]
    assert vllm
    assert all(x.labels.get("model_name") == MODEL and x.labels.get("engine") == "0" for x in vllm)


def test_ttft_buckets_are_calibrations() -> None:
    s = _render(InstanceMetrics(max_model_len=8192), SNAP)
    les = [x.labels["le"] for x in s["vllm:time_to_first_token_seconds_bucket"]]
    assert [float(le) for le in les[:-1]] == CALIBRATION_TTFT_BUCKETS
    assert les[-1] == "+Inf"


def test_request_histograms_and_counters_after_requests() -> None:
    m = InstanceMetrics(max_model_len=8192)
    m.on_first_token(0.03, prompt_tokens=100)
    m.itl.observe(0.01, n=9)
    m.generation_tokens += 10
    done = FinishedRequest(
        request_id="r0",
        arrival_s=1.0,
        first_token_s=1.03,
        finish_s=1.12,
        prompt_tokens=100,
        output_tokens=10,
        prefix_hit_tokens=0,
        preemptions=0,
        queue_s=0.005,
    )
    m.on_finished(done, max_tokens=10)
    m.on_abort()
    s = _render(m, SNAP)
    labels = {"model_name": MODEL, "engine": "0"}
    assert _one(s, "vllm:prompt_tokens_total", **labels) == 100
    assert _one(s, "vllm:generation_tokens_total", **labels) == 10
    assert _one(s, "vllm:request_success_total", finished_reason="length") == 1
    assert _one(s, "vllm:request_success_total", finished_reason="abort") == 1
    assert _one(s, "vllm:request_success_total", finished_reason="stop") == 0
    assert _one(s, "vllm:time_to_first_token_seconds_sum") == pytest.approx(0.03)
    assert _one(s, "vllm:time_to_first_token_seconds_bucket", le="0.04") == 1
    assert _one(s, "vllm:time_to_first_token_seconds_bucket", le="0.02") == 0
    assert _one(s, "vllm:inter_token_latency_seconds_count") == 9
    assert _one(s, "vllm:time_per_output_token_seconds_count") == 9
    assert _one(s, "vllm:request_time_per_output_token_seconds_sum") == pytest.approx(0.01)
    assert _one(s, "vllm:e2e_request_latency_seconds_sum") == pytest.approx(0.12)
    assert _one(s, "vllm:request_queue_time_seconds_sum") == pytest.approx(0.005)
    assert _one(s, "vllm:request_prefill_time_seconds_sum") == pytest.approx(0.025)
    assert _one(s, "vllm:request_decode_time_seconds_sum") == pytest.approx(0.09)
    assert _one(s, "vllm:request_params_max_tokens_sum") == 10


def test_text_is_prometheus_clients_exposition_byte_for_byte_across_scrapes() -> None:
    m = InstanceMetrics(max_model_len=8192)
    snap = SNAP
    collector = _collector(m, snap)
    collector.cache_info["odd"] = 'a "quoted" \\ back\nslash'
    reference = build_registry(collector)
    assert collector.text() == render(reference)
    for i in range(50):  # the cached parts must not keep old values
        m.on_first_token(0.013 * i, prompt_tokens=100 + i)
        m.itl.observe(0.004 * i, n=3)
        m.e2e.observe(2_000_000.5)
        m.late_steps += 1
        snap = dataclasses.replace(snap, num_running=i, kv_usage_frac=i / 50, prefix_hit_tokens=10**7 + i)
        collector.snapshot = lambda s=snap: s
        assert collector.text() == render(reference)
    assert b'vllm:num_requests_running{engine="0",model_name="llama-3-8b"} 49.0\n' in collector.text()


@pytest.mark.parametrize(
    "value", [0.0, -0.0, 1.0, 12.0, 999_999.0, 1_000_000.0, 1_234_567.0, 0.5, -3.0, 1e-7, 500_000.5, math.inf, math.nan]
)
def test_go_number_writes_what_prometheus_client_writes(value: float) -> None:
    assert go_number(value) == go_float(value)
