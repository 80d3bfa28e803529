"""Every shared trace loads, and its summary reproduces the figures of its SOURCE.md table."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from lodestar.workload.build import build_workload, load_trace
from lodestar.workload.catalog import CATALOG
from lodestar.workload.request import RequestSpec
from lodestar.workload.resolve import sniff
from lodestar.workload.spec import NamedSource, WorkloadSpec
from lodestar.workload.summary import length_stats, summarize
from lodestar.workload.traces.length_stats import load_length_stats
from lodestar.workload.traces.servegen import load_servegen
from lodestar.workload.windowed import ServeGenArrivals, servegen_requests


def _named(name: str, traces_dir: Path) -> list[RequestSpec]:
    spec = WorkloadSpec(source=NamedSource(kind="named", name=name))  # type: ignore[arg-type]
    return list(build_workload(spec, traces_dir=traces_dir).requests)


# SOURCE.md tables: requests, span (s, rounded), mean req/s (2 decimals), input and output
# mean / p50 / p99 (rounded), 512-token blocks, reuse % (1 decimal). The splitwise files hold
# the Azure requests (Vidur SOURCE.md), so they must give the Azure figures. Blocks of Azure
# and splitwise prompts are our own fresh segments (no SOURCE figure): None = not checked.
TRACE_TABLE = [
    ("mooncake-conversation", 12_031, 3_537, 3.40, (12035, 6909, 85399), (343, 350, 1115), 288_500, 36.6),
    ("mooncake-synthetic", 3_993, 1_022, 3.91, (15325, 11587, 66456), (149, 69, 768), 121_877, 64.0),
    ("azure-code", 8_819, 3_436, 2.57, (2048, 1469, 7436), (28, 13, 249), None, 0.0),
    ("azure-conv", 19_366, 3_502, 5.53, (1155, 1020, 4142), (211, 129, 601), None, 0.0),
    ("splitwise-code", 8_819, 3_436, 2.57, (2048, 1469, 7436), (28, 13, 249), None, 0.0),
    ("splitwise-conv", 19_366, 3_502, 5.53, (1155, 1020, 4142), (211, 129, 601), None, 0.0),
]


@pytest.mark.parametrize(
    ("name", "requests", "span_s", "mean_rps", "inputs", "outputs", "blocks", "reuse_pct"),
    TRACE_TABLE,
    ids=[row[0] for row in TRACE_TABLE],
)
def test_trace_summary_matches_source_md(
    traces_dir: Path,
    name: str,
    requests: int,
    span_s: int,
    mean_rps: float,
    inputs: tuple[int, int, int],
    outputs: tuple[int, int, int],
    blocks: int | None,
    reuse_pct: float,
) -> None:
    stream = _named(name, traces_dir)
    got = summarize(stream)
    assert got.requests == requests
    assert stream[0].arrival_s == 0.0
    assert all(a.arrival_s <= b.arrival_s for a, b in itertools.pairwise(stream))
    assert round(got.span_s) == span_s
    assert got.mean_rps is not None and round(got.mean_rps, 2) == mean_rps
    assert (round(got.input_tokens.mean), got.input_tokens.p50, got.input_tokens.p99) == inputs
    assert (round(got.output_tokens.mean), got.output_tokens.p50, got.output_tokens.p99) == outputs
    if blocks is not None:
        assert got.prompt_segments == blocks
    assert round(got.prefix_reuse_frac * 100, 1) == reuse_pct
    assert got.sessions == 0 and got.tenants == 0


@pytest.mark.parametrize(("kind",), [("code",), ("conv",)])
def test_azure_and_splitwise_are_the_same_requests(traces_dir: Path, kind: str) -> None:
    azure = load_trace(traces_dir / f"azure-llm-inference-2023/AzureLLMInferenceTrace_{kind}.csv", "azure").requests
    split = load_trace(traces_dir / f"vidur-processed-traces/splitwise_{kind}.csv", "splitwise").requests
    assert len(azure) == len(split)
    gaps = np.array([a.arrival_s - s.arrival_s for a, s in zip(azure, split, strict=True)])
    assert np.abs(gaps).max() < 1e-6  # 7-digit timestamps parsed exactly vs. relative seconds
    assert [(a.prompt.n_tokens, a.output_tokens) for a in azure] == [
        (s.prompt.n_tokens, s.output_tokens) for s in split
    ]


# Length-only sources: rows, input and output mean / p50 / p99 from SOURCE.md.
LENGTH_TABLE = [
    (
        "sharegpt-length-stats/sharegpt_8k_filtered_stats_llama2_tokenizer.csv",
        30_731,
        (2340, 1730, 7433),
        (439, 415, 998),
    ),
    (
        "vidur-processed-traces/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv",
        28_257,
        (2588, 2730, 3933),
        (291, 167, 3270),
    ),
]


@pytest.mark.parametrize(("relative", "rows", "inputs", "outputs"), LENGTH_TABLE, ids=["sharegpt", "arxiv"])
def test_length_distribution_matches_source_md(
    traces_dir: Path, relative: str, rows: int, inputs: tuple[int, int, int], outputs: tuple[int, int, int]
) -> None:
    loaded = load_length_stats(traces_dir / relative)
    assert (loaded.skipped_rows, loaded.clamped_outputs) == (0, 0)
    assert loaded.lengths.input_tokens.size == rows
    for values, expected in ((loaded.lengths.input_tokens, inputs), (loaded.lengths.output_tokens, outputs)):
        stats = length_stats(values)
        assert (round(stats.mean), stats.p50, stats.p99) == expected


@pytest.mark.parametrize(("name", "kind"), [("sharegpt", "sharegpt"), ("arxiv", "arxiv")])
def test_length_only_shorthand_is_poisson_at_one_rps_with_those_lengths(traces_dir: Path, name: str, kind: str) -> None:
    stream = _named(name, traces_dir)
    got = summarize(stream)
    assert 540 <= got.requests <= 660  # Poisson, 1 req/s for 600 s: within ~2.5 sd
    assert stream[-1].arrival_s < 600
    source = load_length_stats(next(e for e in CATALOG if e.name == name).path(traces_dir)).lengths
    assert set(r.prompt.n_tokens for r in stream) <= set(source.input_tokens.tolist())


def test_servegen_m_large_chunk0_has_fourteen_days_of_windows(traces_dir: Path) -> None:
    client = load_servegen(traces_dir / "servegen/language/m-large/chunk-0-trace.csv")
    assert len(client.windows) == 2_016
    assert client.window_s == 600.0
    assert client.end_s == 14 * 86_400
    assert len(client.length_pmfs) == 56  # one pmf per 6 h
    day = servegen_requests(client, 0.0, 86_400.0, seed=0)
    expected = sum(w.rate_rps * client.window_s for w in client.windows if w.start_s < 86_400)
    assert abs(len(day) / expected - 1) < 0.06  # per-window rates reproduced over a day


def test_servegen_windows_do_not_depend_on_the_requested_range(traces_dir: Path) -> None:
    client = load_servegen(traces_dir / "servegen/language/m-large/chunk-0-trace.csv")
    whole = servegen_requests(client, 0.0, 7_200.0, seed=3)
    part = servegen_requests(client, 3_600.0, 3_600.0, seed=3)
    tail = [
        (r.request_id, r.arrival_s - 3_600.0, r.prompt.n_tokens, r.output_tokens) for r in whole if r.arrival_s >= 3_600
    ]
    assert tail and tail == [(r.request_id, r.arrival_s, r.prompt.n_tokens, r.output_tokens) for r in part]


def test_servegen_empty_length_periods_fall_back_to_data(traces_dir: Path) -> None:
    client = load_servegen(traces_dir / "servegen/language/m-large/chunk-1-trace.csv")
    assert client.length_pmfs[0] is None  # the file has no lengths for its first period
    assert client.lengths_at(0.0) is next(p for p in client.length_pmfs if p is not None)


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("mooncake-fast25/conversation_trace.jsonl", "mooncake"),
        ("azure-llm-inference-2023/AzureLLMInferenceTrace_code.csv", "azure"),
        ("vidur-processed-traces/splitwise_conv.csv", "splitwise"),
        ("sharegpt-length-stats/sharegpt_8k_filtered_stats_llama2_tokenizer.csv", "length-stats"),
        ("servegen/reason/deepseek-r1/chunk-2-trace.csv", "servegen"),
    ],
)
def test_trace_format_is_recognised_from_the_first_line(traces_dir: Path, relative: str, expected: str) -> None:
    assert sniff(traces_dir / relative) == expected


def test_servegen_arrival_process_gives_the_request_times(traces_dir: Path) -> None:
    client = load_servegen(traces_dir / "servegen/reason/deepseek-r1/chunk-3-trace.csv")
    requests = servegen_requests(client, 1_800.0, 40_000.0, seed=5)
    times = ServeGenArrivals(client, start_s=1_800.0, seed=5).times(40_000.0)
    assert len(requests) > 100
    assert [r.arrival_s for r in requests] == times.tolist()
