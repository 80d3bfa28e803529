"""`lodestar bench` rejects bad input with one clear line and a non-zero exit, never a traceback;
`lodestar bench plot` draws saved runs side by side."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lodestar.bench.client import RunStats, SendResult
from lodestar.bench.results import build_run, write_json
from lodestar.bench.schedule import TimeScale, plan_sends
from lodestar.bench.sse import StreamOutcome
from lodestar.cli.app import build_app
from lodestar.localinfra.ports import free_port
from lodestar.workload.request import Prompt, RequestSpec
from lodestar.workload.traces.lodestar_jsonl import dump_requests


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """Three requests arriving at 5, 6 and 7 s."""
    path = tmp_path / "t.jsonl"
    requests = [RequestSpec(f"r{i}", arrival_s=5.0 + i, prompt=Prompt(16), output_tokens=4) for i in range(3)]
    path.write_text(dump_requests(requests))
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), ["bench", *args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--url", "localhost:8000"], "expected http://host:port"),
        (["--url", "ftp://example"], "expected http://host:port"),
        (["--url", "http://"], "expected http://host:port"),
        (["--url", "http://127.0.0.1:99999"], "--url 'http://127.0.0.1:99999'"),
        (["--url", "http://a:1", "--endpoint", "embeddings"], "--endpoint 'embeddings'"),
        (["--url", "http://a:1", "--time-scale", "0"], "--time-scale"),
        (["--url", "http://a:1", "--rate", "0"], "--rate must be > 0"),
        (["--url", "http://a:1", "--speedup", "-2"], "--speedup must be > 0"),
        (["--url", "http://a:1", "--duration", "0"], "--duration must be > 0"),
        (["--url", "http://a:1", "--rate", "1", "--speedup", "2"], "not both"),
        (["--url", "http://a:1", "--max-requests", "0"], "--max-requests must be >= 1"),
        (["--url", "http://a:1", "--duration", "1"], "no requests in the chosen window"),
    ],
)
def test_bad_options(trace: Path, args: list[str], fragment: str) -> None:
    code, _, err = invoke("run", str(trace), *args)
    assert code == 2
    assert fragment in err


def test_a_rate_the_window_does_not_run_at_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "bursty.jsonl"
    burst = [RequestSpec(f"b{i}", arrival_s=0.1 * i, prompt=Prompt(16), output_tokens=2) for i in range(10)]
    quiet = [RequestSpec(f"q{i}", arrival_s=10.0 + 9.0 * i, prompt=Prompt(16), output_tokens=2) for i in range(10)]
    path.write_text(dump_requests(burst + quiet))
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every send fails at once
    code, out, _ = invoke("run", str(path), "--url", dead, "--rate", "1", "--duration", "3", "--time-scale", "0.01")
    assert code == 1  # every request failed
    assert "note: --rate 1 is the mean rate of the whole workload; the window sent arrives at" in out


def test_bad_target() -> None:
    code, _, err = invoke("run", "no-such-trace", "--url", "http://127.0.0.1:1")
    assert code == 2
    assert "error:" in err and "no-such-trace" in err


def test_bad_spec_file_names_the_field(tmp_path: Path) -> None:
    spec = tmp_path / "w.yaml"
    spec.write_text("source:\n  kind: generator\n  duration_s: -1\n  arrivals: {process: poisson, rate_rps: 1}\n")
    code, _, err = invoke("run", str(spec), "--url", "http://127.0.0.1:1")
    assert code == 2
    assert "duration_s" in err


def test_url_is_required(trace: Path) -> None:
    code, _, err = invoke("run", str(trace))
    assert code == 2
    assert "--url" in err


# --- plot ---------------------------------------------------------------------------------------


def saved_run(path: Path, label: str, ttft_s: float) -> Path:
    requests = [RequestSpec(f"r{i}", arrival_s=float(i), prompt=Prompt(16), output_tokens=4) for i in range(20)]
    sends = plan_sends(requests, ["http://x"], TimeScale(1.0))
    results = [
        SendResult(s, s.due_wall_s, StreamOutcome(ttft_s * (1 + s.index / 20), 0.01, 0.2, 4, 16, 4, None), 200)
        for s in sends
    ]
    stats = RunStats(wall_s=20.0, client_cpu_s=0.1, peak_in_flight=1, max_connections=10, loop_lag_s=[0.0])
    write_json(path, build_run(label, {"workload": "w", "time_scale": 1.0}, results, stats, TimeScale(1.0), 0.0, 0.02))
    return path


def test_plot_side_by_side(tmp_path: Path) -> None:
    a = saved_run(tmp_path / "a.json", "same", 0.1)
    b = saved_run(tmp_path / "b.json", "same", 0.2)
    code, out, _ = invoke("plot", str(a), str(b), "--out", str(tmp_path / "plots"))
    assert code == 0, out
    for name in ("ttft_over_time.png", "ttft_cdf.png"):
        png = tmp_path / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(png) in out


@pytest.mark.parametrize(
    ("content", "fragment"), [("{oops", "not JSON"), ('{"format": "x"}', "not a `lodestar bench --json` result")]
)
def test_plot_rejects_other_files(tmp_path: Path, content: str, fragment: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    code, _, err = invoke("plot", str(bad), "--out", str(tmp_path / "p"))
    assert code == 2
    assert fragment in err


def test_plot_missing_file(tmp_path: Path) -> None:
    code, _, err = invoke("plot", str(tmp_path / "none.json"), "--out", str(tmp_path / "p"))
    assert code == 2
    assert "cannot read" in err
