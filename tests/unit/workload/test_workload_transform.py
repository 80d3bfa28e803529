"""Rate scaling, slicing and the summary, hand-checked on tiny streams."""

from __future__ import annotations

import pytest

from lodestar.workload.errors import WorkloadError
from lodestar.workload.request import Prompt, RequestSpec
from lodestar.workload.summary import length_stats, prefix_reuse, summarize
from lodestar.workload.transform import mean_rate_rps, scale_to_rate, speedup, time_slice


def _stream(*arrivals: float) -> list[RequestSpec]:
    return [RequestSpec(f"r{i}", t, Prompt(16), 1) for i, t in enumerate(arrivals)]


def _times(requests: list[RequestSpec]) -> list[float]:
    return [r.arrival_s for r in requests]


@pytest.mark.parametrize(
    ("arrivals", "factor", "expected"),
    [
        ((0.0, 1.0, 2.0, 4.0), 2.0, [0.0, 0.5, 1.0, 2.0]),
        ((0.0, 1.0, 3.0), 0.5, [0.0, 2.0, 6.0]),
        ((0.0, 1.0), 1.0, [0.0, 1.0]),
    ],
)
def test_speedup_divides_arrival_times(arrivals: tuple[float, ...], factor: float, expected: list[float]) -> None:
    assert _times(speedup(_stream(*arrivals), factor)) == expected


@pytest.mark.parametrize(
    ("arrivals", "target_rps", "expected"),
    [
        ((0.0, 1.0, 2.0, 4.0), 2.0, [0.0, 0.5, 1.0, 2.0]),  # 4 requests / 4 s = 1 req/s -> 2 req/s
        ((0.0, 1.0, 2.0, 4.0), 0.5, [0.0, 2.0, 4.0, 8.0]),
        ((10.0, 12.0), 0.25, [40.0, 48.0]),  # 2 / 2 s = 1 req/s -> 0.25 req/s: times × 4
    ],
)
def test_scale_to_rate_hits_the_target_mean_rate(
    arrivals: tuple[float, ...], target_rps: float, expected: list[float]
) -> None:
    scaled = scale_to_rate(_stream(*arrivals), target_rps)
    assert _times(scaled) == pytest.approx(expected)
    assert mean_rate_rps(scaled) == pytest.approx(target_rps)


@pytest.mark.parametrize(
    ("start_s", "duration_s", "expected_ids", "expected_times"),
    [
        (1.0, 2.0, ["r1", "r2"], [0.0, 1.0]),
        (1.5, None, ["r2", "r3", "r4"], [0.5, 1.5, 2.5]),
        (0.0, 0.5, ["r0"], [0.0]),
        (10.0, 5.0, [], []),
    ],
)
def test_time_slice_keeps_the_window_and_rebases_to_its_start(
    start_s: float, duration_s: float | None, expected_ids: list[str], expected_times: list[float]
) -> None:
    sliced = time_slice(_stream(0.0, 1.0, 2.0, 3.0, 4.0), start_s, duration_s)
    assert [r.request_id for r in sliced] == expected_ids
    assert _times(sliced) == expected_times


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: speedup(_stream(0.0, 1.0), 0.0), "speedup factor"),
        (lambda: scale_to_rate(_stream(0.0), 1.0), "at least 2 requests"),
        (lambda: scale_to_rate(_stream(3.0, 3.0), 1.0), "same time"),
        (lambda: scale_to_rate(_stream(0.0, 1.0), -2.0), "target_rps"),
        (lambda: time_slice(_stream(0.0), -1.0, 1.0), "start_s"),
        (lambda: time_slice(_stream(0.0), 0.0, 0.0), "duration_s"),
    ],
)
def test_bad_scaling_and_slicing_arguments_raise(call, fragment: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=fragment):
        call()


def test_prefix_reuse_counts_only_unbroken_prefixes() -> None:
    prompts = [
        Prompt(1536, (1, 2, 3), 512),
        Prompt(1536, (1, 2, 4), 512),  # 1, 2 seen
        Prompt(1536, (5, 2, 3), 512),  # first block new: 2, 3 do not count
        Prompt(1300, (1, 2, 3), 512),  # all three seen (last one partial)
        Prompt(600, (1, 2, 9), 512),  # covers 2 blocks only: both seen
        Prompt(32, (1, 2), 16),  # other segment size: never shares with 512-token segments
    ]
    assert prefix_reuse(prompts) == (3 + 3 + 3 + 3 + 2 + 2, 2 + 0 + 3 + 2)


def test_length_stats_use_the_lower_percentile() -> None:
    stats = length_stats(list(range(1, 11)))
    assert (stats.mean, stats.p50, stats.p90, stats.p99, stats.min, stats.max) == (5.5, 5.0, 9.0, 9.0, 1, 10)


def test_summary_of_a_tiny_stream() -> None:
    stream = [
        RequestSpec("a", 0.0, Prompt(1024, (1, 2), 512), 5, session_id="s1", tenant="t"),
        RequestSpec("b", 2.0, Prompt(1536, (1, 2, 3), 512), 7, session_id="s1", tenant="t"),
        RequestSpec("c", 4.0, Prompt(512, (8,), 512), 9),
    ]
    got = summarize(stream)
    assert (got.requests, got.span_s, got.mean_rps) == (3, 4.0, 0.75)
    assert (got.prompt_segments, got.reused_segments, got.prefix_reuse_frac) == (6, 2, 2 / 6)
    assert (got.sessions, got.tenants) == (1, 1)
    assert got.output_tokens.mean == 7.0


def test_summary_edge_cases() -> None:
    assert summarize(_stream(1.0, 1.0)).mean_rps is None
    with pytest.raises(WorkloadError, match="empty"):
        summarize([])
