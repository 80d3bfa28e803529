"""`lodestar bench run` as users run it: a real `lodestar emulate` process on 127.0.0.1 and the
real CLI as a subprocess. No timing assertions: only what was sent, received and written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lodestar.cli.app import build_app
from lodestar.localinfra.ports import free_port, free_port_block
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.workload.build import build_workload
from lodestar.workload.resolve import spec_for_target

pytestmark = pytest.mark.integration

SPEC = """\
name: bench-it
seed: 3
source:
  kind: generator
  duration_s: 2
  arrivals: {process: poisson, rate_rps: 20}
  lengths: {kind: uniform, input_min: 20, input_max: 300, output_min: 2, output_max: 24}
"""


def _lodestar() -> list[str]:
    exe = Path(sys.executable).with_name("lodestar")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from lodestar.cli.app import main; main()"]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def emulated(local_infra: LocalInfraSettings) -> Iterator[list[str]]:
    """Two emulated instances (mini-hetero2) at time scale 2."""
    base = free_port_block(2)
    urls = [f"http://127.0.0.1:{base}", f"http://127.0.0.1:{base + 1}"]
    proc = ManagedProcess(
        name=f"test-bench-emulator-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        argv=[*_lodestar(), "emulate", "--cluster", "mini-hetero2", "--time-scale", "2", "--port", str(base)],
        run_dir=local_infra.run_dir,
        log_dir=local_infra.log_dir,
    )
    proc.start(ready=lambda: all(_healthy(u) for u in urls), timeout_s=60)
    try:
        yield urls
    finally:
        proc.stop()


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "w.yaml"
    path.write_text(SPEC)
    return path


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": "sk-test", "COLUMNS": "150"}
    return subprocess.run(
        [*_lodestar(), "bench", "run", *args, "--no-progress"], capture_output=True, text=True, timeout=120, env=env
    )


def test_a_short_workload_succeeds_with_exact_lengths(emulated: list[str], spec: Path, tmp_path: Path) -> None:
    out, plots = tmp_path / "run.json", tmp_path / "plots"
    proc = bench(
        str(spec), *("--url", emulated[0]), *("--url", emulated[1] + "/v1/"), "--max-requests", "20",
        "--time-scale", "2", "--json", str(out), "--plots", str(plots), "--label", "it",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "TTFT (ms)" in proc.stdout and "time scale 2" in proc.stdout

    data = json.loads(out.read_text())
    expected = {r.request_id: r for r in build_workload(spec_for_target(str(spec))).requests[:20]}
    records = data["records"]
    assert len(records) == 20 == data["runs"][0]["summary"]["n_requests"]
    assert data["runs"][0]["summary"]["n_errors"] == 0 and data["errors"] == {}
    for row in records:
        want = expected[row["request_id"]]
        assert row["error"] is None and row["http_status"] == 200
        assert row["output_tokens"] == want.output_tokens == row["requested_output_tokens"]
        assert row["server_prompt_tokens"] == want.prompt.n_tokens == row["prompt_tokens"]
        assert 0 < row["headers_s"] <= row["ttft_s"] <= row["e2e_s"]
        assert (row["tpot_s"] is None) == (want.output_tokens == 1)
    assert {row["url"] for row in records} == set(emulated)  # round-robin over both
    assert data["short_outputs"] == 0 and data["time_scale"] == 2.0
    assert sorted(p.name for p in plots.iterdir()) == ["ttft_cdf.png", "ttft_over_time.png"]

    replot = tmp_path / "replot"  # the saved run reads back and plots (in-process: no second start-up)
    result = CliRunner().invoke(build_app(), ["bench", "plot", str(out), str(out), "--out", str(replot)])
    assert result.exit_code == 0, result.output
    assert (replot / "ttft_cdf.png").stat().st_size > 0


def test_chat_endpoint(emulated: list[str], spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "chat.json"
    proc = bench(str(spec), "--url", emulated[0], "--endpoint", "chat", "--max-requests", "6", "--json", str(out))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    data = json.loads(out.read_text())
    assert data["runs"][0]["summary"]["n_errors"] == 0
    for row in data["records"]:
        assert row["output_tokens"] == row["requested_output_tokens"]
        assert row["server_prompt_tokens"] > row["prompt_tokens"]  # the chat template adds tokens


def test_nothing_listening_reports_every_request_failed(spec: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    out = tmp_path / "dead.json"
    proc = bench(str(spec), "--url", f"http://127.0.0.1:{port}", "--max-requests", "8", "--json", str(out))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "every request failed" in proc.stderr and "connect" in proc.stderr
    assert "8 failed" in proc.stdout
    data = json.loads(out.read_text())
    assert data["errors"] == {"connect": 8}
    assert all(r["error"] == "connect" and r["ttft_s"] is None for r in data["records"])
