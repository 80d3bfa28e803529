"""Bench results are simulator results: the same ``summarize`` on the same records, a JSON file
that reads back exactly, and percentiles as numpy computes them."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lodestar.bench.client import RunStats, SendResult
from lodestar.bench.report import client_warnings, latency_table, print_report
from lodestar.bench.results import BenchRecord, ResultFileError, Stats, build_run, read_json, write_json
from lodestar.bench.schedule import Send, TimeScale
from lodestar.bench.sse import StreamOutcome
from lodestar.sim.results import RequestRecord, summarize
from lodestar.workload.request import Prompt, RequestSpec


def results(n: int = 40, failed: int = 3, scale: float = 2.0) -> list[SendResult]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        request = RequestSpec(f"r{i}", arrival_s=0.5 * i, prompt=Prompt(100 + i), output_tokens=16)
        send = Send(i, request, f"http://h{i % 2}", due_wall_s=0.5 * i * scale)
        if i < failed:
            outcome = StreamOutcome(None, None, None, 0, None, 0, "connect", "ConnectError: refused")
            status = None
        else:
            ttft = float(rng.uniform(0.05, 0.5)) * scale
            tpot = float(rng.uniform(0.01, 0.03)) * scale
            outcome = StreamOutcome(ttft, tpot, ttft + 15 * tpot, 16, 100 + i, 16, None)
            status = 200
        out.append(SendResult(send, send.due_wall_s + 0.001 * (i % 3), outcome, status))
    return out


def stats(scale: float = 2.0) -> RunStats:
    return RunStats(wall_s=30.0, client_cpu_s=3.0, peak_in_flight=7, max_connections=100, loop_lag_s=[0.001, 0.002])


@pytest.mark.parametrize("scale", [1.0, 2.0, 8.0])
def test_summary_is_the_simulators_summarize(scale: float) -> None:
    run = build_run("live", {"time_scale": scale}, results(scale=scale), stats(), TimeScale(scale), 0.0, 0.02)
    assert run.summary == summarize("live", run.request_records)
    assert run.summary.n_errors == 3
    assert run.errors == {"connect": 3}


def test_latency_percentiles_match_numpy_over_successful_requests() -> None:
    run = build_run("live", {}, results(scale=2.0), stats(), TimeScale(2.0), 0.0, 0.02)
    ok = [r for r in run.request_records if r.error is None]
    ttft = np.array([r.ttft_s for r in ok], dtype=float)
    assert run.latency.ttft_s.n == len(ok) == 37
    assert run.latency.ttft_s.mean == pytest.approx(ttft.mean())
    assert run.latency.ttft_s.p50 == pytest.approx(np.percentile(ttft, 50))
    assert run.latency.ttft_s.p99 == pytest.approx(np.percentile(ttft, 99))
    assert run.latency.ttft_s.p50 == pytest.approx(run.summary.ttft_p50_s)
    assert run.latency.tpot_s.mean == pytest.approx(run.summary.tpot_mean_s)
    assert run.latency.e2e_s.p99 == pytest.approx(run.summary.e2e_p99_s)
    assert max(ttft) <= 0.5  # wall ÷ time scale


def test_stats_of_nothing_is_nan() -> None:
    s = Stats.of([])
    assert s.n == 0 and math.isnan(s.mean) and math.isnan(s.p99)


def test_json_round_trip(tmp_path: Path) -> None:
    meta = {"workload": "w", "time_scale": 2.0, "urls": ["http://h0", "http://h1"]}
    run = build_run("live", meta, results(), stats(), TimeScale(2.0), 0.0, 0.02)
    path = tmp_path / "sub" / "run.json"
    write_json(path, run)
    back = read_json(path)
    assert back.summary == run.summary
    assert back.latency == run.latency
    assert back.records == run.records
    assert back.meta == meta
    assert (back.label, back.errors, back.send_lag, back.client) == (run.label, run.errors, run.send_lag, run.client)


def test_json_has_the_sim_shape(tmp_path: Path) -> None:
    """``runs[0].summary`` holds the same keys ``lodestar sim --json`` writes."""
    run = build_run("live", {"workload": "w"}, results(), stats(), TimeScale(1.0), 0.0, 0.02)
    path = tmp_path / "run.json"
    write_json(path, run)
    data = json.loads(path.read_text())
    assert data["runs"][0]["policy"] == "live"
    assert data["summary"] == data["runs"][0]["summary"]
    assert set(data["runs"][0]["summary"]) == set(run.summary.model_dump())
    row = data["records"][0]
    assert set(RequestRecord.__dataclass_fields__) <= set(row)
    assert {"scheduled_s", "send_lag_s", "url", "http_status", "requested_output_tokens"} <= set(row)


def test_record_json_round_trip() -> None:
    rec = RequestRecord("a", "http://x", 1.0, 10, 5, 0.1, 0.01, 0.2, 1.2)
    b = BenchRecord(rec, 1.0, 0.0, "http://x", 200, 5, 12, None)
    assert BenchRecord.from_json(json.loads(json.dumps(b.to_json()))) == b
    timed = replace(b, gateway_wall_ms=1.25)
    assert BenchRecord.from_json(json.loads(json.dumps(timed.to_json()))) == timed


def test_the_gateways_own_time_is_kept_in_wall_ms_and_summarised(tmp_path: Path) -> None:
    """Answers with the gateway's Server-Timing: their ``gateway`` value per record, unscaled
    (the router's real time, not the emulated engine's), and its stats over those records only."""
    own = [1.0 + 0.1 * i if i % 4 else None for i in range(40)]
    timed = [replace(r, gateway_ms=g) for r, g in zip(results(scale=8.0), own, strict=True)]
    run = build_run("live", {"time_scale": 8.0}, timed, stats(), TimeScale(8.0), 0.0, 0.02)
    assert [b.gateway_wall_ms for b in run.records] == own
    values = [g for g in own if g is not None]
    assert run.gateway_wall_ms is not None and run.gateway_wall_ms.n == len(values) == 30
    assert run.gateway_wall_ms.p50 == pytest.approx(np.percentile(values, 50))
    assert run.gateway_wall_ms.p99 == pytest.approx(np.percentile(values, 99))
    path = tmp_path / "run.json"
    write_json(path, run)
    assert read_json(path).gateway_wall_ms == run.gateway_wall_ms
    from rich.console import Console

    console = Console(record=True, width=240)
    print_report(run, 0.02, console)
    assert f"P50 {run.gateway_wall_ms.p50:.2f} ms" in console.export_text()
    plain = build_run("live", {}, results(), stats(), TimeScale(2.0), 0.0, 0.02)  # no answer had it
    assert plain.gateway_wall_ms is None
    write_json(path, plain)
    assert json.loads(path.read_text())["gateway_wall_ms"] is None and read_json(path).gateway_wall_ms is None


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not JSON"),
        ('{"runs": []}', "not a `lodestar bench --json` result"),
        ('{"format": "lodestar-bench/1", "runs": []}', "malformed"),
    ],
)
def test_read_json_rejects(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(ResultFileError, match=match):
        read_json(path)
    with pytest.raises(ResultFileError, match="cannot read"):
        read_json(tmp_path / "missing.json")


def test_report_mentions_time_scale_and_warns_on_lag() -> None:
    late = [SendResult(r.send, r.send.due_wall_s + 0.5, r.outcome, r.http_status) for r in results()]
    run = build_run("live", {"workload": "w", "time_scale": 4.0}, late, stats(), TimeScale(4.0), 0.0, 0.02)
    assert any("send lag" in w for w in client_warnings(run, 0.02))
    from rich.console import Console

    console = Console(record=True, width=200)
    print_report(run, 0.02, console)
    out = console.export_text()
    assert "time scale 4" in out and "÷ 4" in out
    assert "connect: 3" in out
    assert "TTFT (ms)" in out
    assert latency_table(run, "t").row_count == 3


def test_no_warning_when_the_client_kept_up() -> None:
    run = build_run("live", {"time_scale": 1.0}, results(), stats(), TimeScale(1.0), 0.0, 0.02)
    assert client_warnings(run, 0.02) == []
