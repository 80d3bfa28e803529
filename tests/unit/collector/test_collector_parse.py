"""The pure parser against captured /metrics texts (expected values read off the files by hand)
and against small hand-written texts for the combination rules and every error path."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from lodestar_collector.parse import (
    InvalidMetricValueError,
    MalformedMetricsError,
    MetricsParseError,
    MetricsSnapshot,
    MissingMetricError,
    parse_metrics,
)

TESTDATA = Path(__file__).resolve().parents[3] / "services" / "collector" / "testdata"


def _read(name: str) -> str:
    return (TESTDATA / name).read_text()


CAPTURED = [
    pytest.param(
        "emulator_h100_loaded.txt",
        MetricsSnapshot(
            engine="vllm",
            model_names=("llama-3-8b",),
            num_running=6,
            num_waiting=0,
            kv_usage_frac=0.0052694864903098035,
            prefix_cache_hits_total=9600,
            prefix_cache_queries_total=11220,
            prefix_hit_rate_gauge=None,
            block_size=16,
            num_gpu_blocks=28276,
            num_preemptions_total=0,
            engines=1,
        ),
        id="emulator-vllm-names",
    ),
    pytest.param(
        "vllm_v1_qwen3_0_6b.txt",
        MetricsSnapshot(
            engine="vllm",
            model_names=("Qwen/Qwen3-0.6B",),
            num_running=0,
            num_waiting=0,
            kv_usage_frac=0.0,  # from the deprecated vllm:gpu_cache_usage_perc
            prefix_cache_hits_total=None,  # prefix caching off: no counters exported
            prefix_cache_queries_total=None,
            prefix_hit_rate_gauge=None,
            block_size=16,
            num_gpu_blocks=2340,
            num_preemptions_total=0,
            engines=1,
        ),
        id="vllm-v1-old-kv-name",
    ),
    pytest.param(
        "vllm_v1_qwen25_coder_excerpt.txt",
        MetricsSnapshot(
            engine="vllm",
            model_names=("Qwen/Qwen2.5-Coder-32B-Instruct",),
            num_running=0,
            num_waiting=0,
            kv_usage_frac=0.0,
            prefix_cache_hits_total=None,  # only a HELP/TYPE header, no sample
            prefix_cache_queries_total=None,
            prefix_hit_rate_gauge=None,
            block_size=None,  # no vllm:cache_config_info in the excerpt
            num_gpu_blocks=None,
            num_preemptions_total=None,
            engines=1,
        ),
        id="vllm-v1-process-metrics-ignored",
    ),
    pytest.param(
        "sglang_llama31_8b_docs.txt",
        MetricsSnapshot(
            engine="sglang",
            model_names=("meta-llama/Llama-3.1-8B-Instruct",),
            num_running=162,
            num_waiting=2826,
            kv_usage_frac=0.28,
            prefix_cache_hits_total=None,  # this SGLang version has no cached_tokens_total
            prefix_cache_queries_total=None,
            prefix_hit_rate_gauge=0.007507552643049313,
            block_size=None,
            num_gpu_blocks=None,
            num_preemptions_total=None,
            engines=1,
        ),
        id="sglang-docs",
    ),
]


@pytest.mark.parametrize(("filename", "expected"), CAPTURED)
def test_captured_texts(filename: str, expected: MetricsSnapshot) -> None:
    assert parse_metrics(_read(filename)) == expected


def test_captured_excerpt_without_request_counts_names_the_missing_metric() -> None:
    # vLLM 0.10 excerpt from production-stack #617: counters and KV usage, no num_requests_*.
    with pytest.raises(MissingMetricError) as err:
        parse_metrics(_read("vllm_0_10_glm45_excerpt.txt"))
    assert err.value.metric == "vllm:num_requests_running"
    assert "sglang:num_running_reqs" in str(err.value)


def test_new_hits_are_never_paired_with_old_queries() -> None:
    # The same excerpt plus request counts: new queries + old hits only → no counter pair.
    text = _read("vllm_0_10_glm45_excerpt.txt") + (
        'vllm:num_requests_running{engine="0",model_name="zai-org/GLM-4.5"} 1.0\n'
        'vllm:num_requests_waiting{engine="0",model_name="zai-org/GLM-4.5"} 0.0\n'
    )
    snap = parse_metrics(text)
    assert (snap.prefix_cache_hits_total, snap.prefix_cache_queries_total) == (None, None)
    assert snap.kv_usage_frac == pytest.approx(9.75010481363281e-06)


def _vllm(extra: str = "", running: str = "3", waiting: str = "1", kv: str = "0.5") -> str:
    return (
        f'vllm:num_requests_running{{engine="0",model_name="m"}} {running}\n'
        f'vllm:num_requests_waiting{{engine="0",model_name="m"}} {waiting}\n'
        f'vllm:kv_cache_usage_perc{{engine="0",model_name="m"}} {kv}\n' + extra
    )


DP2 = """\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 5.0
vllm:num_requests_running{engine="1",model_name="m"} 3.0
vllm:num_requests_waiting{engine="0",model_name="m"} 2.0
vllm:num_requests_waiting{engine="1",model_name="m"} 0.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.45
vllm:kv_cache_usage_perc{engine="1",model_name="m"} 0.32
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.99
# TYPE vllm:prefix_cache_queries counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 100.0
vllm:prefix_cache_queries_created{engine="0",model_name="m"} 1.7e9
vllm:prefix_cache_queries_total{engine="1",model_name="m"} 60.0
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 40.0
vllm:prefix_cache_hits_total{engine="1",model_name="m"} 20.0
vllm:gpu_prefix_cache_hits_total{engine="0",model_name="m"} 999.0
vllm:gpu_prefix_cache_queries_total{engine="0",model_name="m"} 999.0
vllm:external_prefix_cache_hits_total{engine="0",model_name="m"} 7.0
vllm:num_preemptions_total{engine="0",model_name="m"} 1.0
vllm:num_preemptions_total{engine="1",model_name="m"} 2.0
vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="1000"} 1.0
vllm:cache_config_info{block_size="16",engine="1",num_gpu_blocks="900"} 1.0
"""

COMBINATIONS = [
    pytest.param(
        DP2,
        {
            "num_running": 8,
            "num_waiting": 2,
            "kv_usage_frac": 0.45,  # max over engines; the deprecated name is ignored when the new one exists
            "prefix_cache_hits_total": 60,  # summed; old and external families ignored
            "prefix_cache_queries_total": 160,
            "num_preemptions_total": 3,
            "block_size": 16,
            "num_gpu_blocks": 1900,
            "engines": 2,
        },
        id="two-dp-engines",
    ),
    pytest.param(
        'vllm:num_requests_running{model_name="a"} 2\nvllm:num_requests_running{model_name="b"} 1\n'
        'vllm:num_requests_waiting{model_name="a"} 4\nvllm:num_requests_waiting{model_name="b"} 0\n'
        'vllm:kv_cache_usage_perc{model_name="a"} 0.1\nvllm:kv_cache_usage_perc{model_name="b"} 0.7\n',
        {"num_running": 3, "num_waiting": 4, "kv_usage_frac": 0.7, "model_names": ("a", "b"), "engines": 1},
        id="two-model-names-one-engine",
    ),
    pytest.param(
        _vllm(
            'vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="10"} 1\n'
            'vllm:cache_config_info{block_size="32",engine="1",num_gpu_blocks="None"} 1\n'
        ),
        {"block_size": None, "num_gpu_blocks": 10},
        id="disagreeing-block-sizes",
    ),
    pytest.param(
        _vllm('vllm:cache_config_info{block_size="16",num_gpu_blocks="None"} 1\n'),
        {"block_size": 16, "num_gpu_blocks": None},
        id="gpu-blocks-None",
    ),
    pytest.param(
        _vllm(
            'vllm:gpu_prefix_cache_hits_total{model_name="m"} 5\n'
            'vllm:gpu_prefix_cache_queries_total{model_name="m"} 9\n'
        ),
        {"prefix_cache_hits_total": 5, "prefix_cache_queries_total": 9},
        id="old-prefix-names",
    ),
    pytest.param(_vllm(kv="1.0000001"), {"kv_usage_frac": 1.0}, id="kv-clamped-to-one"),
    pytest.param(
        'sglang:num_running_reqs{model_name="m",tp_rank="0",dp_rank="0"} 4\n'
        'sglang:num_running_reqs{model_name="m",tp_rank="1",dp_rank="0"} 4\n'
        'sglang:num_running_reqs{model_name="m",tp_rank="0",dp_rank="1"} 2\n'
        'sglang:num_queue_reqs{model_name="m",tp_rank="0",dp_rank="0"} 1\n'
        'sglang:num_queue_reqs{model_name="m",tp_rank="0",dp_rank="1"} 3\n'
        'sglang:token_usage{model_name="m",tp_rank="0",dp_rank="0"} 0.2\n'
        'sglang:token_usage{model_name="m",tp_rank="0",dp_rank="1"} 0.6\n'
        'sglang:cache_hit_rate{model_name="m",tp_rank="0",dp_rank="0"} 0.9\n'
        'sglang:prompt_tokens_total{model_name="m"} 1000\n'
        'sglang:cached_tokens_total{model_name="m"} 250\n'
        'sglang:num_retracted_requests_total{model_name="m",tp_rank="0",dp_rank="0"} 2\n',
        {
            "engine": "sglang",
            "num_running": 6,  # tp replicas deduplicated, dp ranks summed
            "num_waiting": 4,
            "kv_usage_frac": 0.6,
            "prefix_cache_hits_total": 250,
            "prefix_cache_queries_total": 1000,
            "prefix_hit_rate_gauge": None,  # counters present: the gauge is not used
            "num_preemptions_total": 2,
            "engines": 2,
        },
        id="sglang-dp-tp-and-counters",
    ),
]


@pytest.mark.parametrize(("text", "expected"), COMBINATIONS)
def test_combination_rules(text: str, expected: dict[str, object]) -> None:
    snap = parse_metrics(text)
    assert {k: getattr(snap, k) for k in expected} == expected


ERRORS = [
    pytest.param("", MissingMetricError, "vllm:num_requests_running", id="empty"),
    pytest.param("# just a comment\n", MissingMetricError, "vllm:num_requests_running", id="comments-only"),
    pytest.param(
        'vllm:num_requests_running{model_name="m"} 1\nvllm:kv_cache_usage_perc{model_name="m"} 0\n',
        MissingMetricError,
        "vllm:num_requests_waiting",
        id="no-waiting",
    ),
    pytest.param(
        'vllm:num_requests_running{model_name="m"} 1\nvllm:num_requests_waiting{model_name="m"} 0\n',
        MissingMetricError,
        "vllm:kv_cache_usage_perc",
        id="no-kv",
    ),
    pytest.param(
        "sglang:num_running_reqs 1\nsglang:num_queue_reqs 0\n",
        MissingMetricError,
        "sglang:token_usage",
        id="sglang-no-kv",
    ),
    pytest.param("<html><body>502 Bad Gateway</body></html>", MalformedMetricsError, "", id="html"),
    pytest.param('vllm:num_requests_running{model_name="m"} abc\n', MalformedMetricsError, "", id="bad-value"),
    pytest.param('vllm:num_requests_running{model_name="m} 1\n', MalformedMetricsError, "", id="cut-label"),
    pytest.param(_vllm(running="NaN"), InvalidMetricValueError, "vllm:num_requests_running", id="nan"),
    pytest.param(_vllm(waiting="-1"), InvalidMetricValueError, "vllm:num_requests_waiting", id="negative"),
    pytest.param(_vllm(kv="+Inf"), InvalidMetricValueError, "vllm:kv_cache_usage_perc", id="inf"),
]


@pytest.mark.parametrize(("text", "error", "names"), ERRORS)
def test_errors_are_clear(text: str, error: type[MetricsParseError], names: str) -> None:
    with pytest.raises(error) as err:
        parse_metrics(text)
    assert isinstance(err.value, MetricsParseError)
    assert names in str(err.value)


@pytest.mark.parametrize("cut", [10, 1000, 5000, 20000, 31000])
def test_truncated_capture_never_crashes(cut: int) -> None:
    text = _read("emulator_h100_loaded.txt")[:cut]
    try:
        snap = parse_metrics(text)
    except MetricsParseError:
        return
    assert math.isfinite(snap.kv_usage_frac)


def test_only_the_used_metrics_are_parsed() -> None:
    # A broken line of a metric the collector does not use is ignored (it is never parsed) …
    assert parse_metrics(_vllm('vllm:time_to_first_token_seconds_bucket{le="0.1" 3\n')).num_running == 3
    # … but names that merely start like a used one are not taken for it.
    text = _vllm('vllm:num_requests_running_by_reason{engine="0",reason="x"} 50\n')
    assert parse_metrics(text).num_running == 3
