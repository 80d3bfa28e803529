"""`lodestar bench compare` end to end on a tiny fleet and workload: one peer router policy
(sglang-router round_robin) and Lodestar cold, each on its own freshly started emulator, the
same workload file through each, one table, compare.json/compare.md and the CDF plot. No
timing assertions: what ran, what was sent and received, and what was written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

SPEC = """\
name: compare-it
seed: 5
source:
  kind: generator
  duration_s: 600
  arrivals: {process: poisson, rate_rps: 2}
  lengths: {kind: uniform, input_min: 40, input_max: 400, output_min: 2, output_max: 16}
"""


def test_compare_one_peer_and_lodestar(tmp_path: Path) -> None:
    spec = tmp_path / "w.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "out"
    argv = [
        sys.executable, "-m", "lodestar", "bench", "compare",
        "--fleet", "mini-hetero2", "--trace", str(spec),
        "--router", "sglang:round_robin", "--router", "lodestar:cold",
        "--load", "0.02", "--duration", "4", "--warmup-start", "100", "--warmup-duration", "4",
        "--time-scale", "1", "--ttft-cap", "30", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 1: a run judged invalid (busy machine)
    assert "Traceback" not in proc.stderr
    report = json.loads((out / "compare.json").read_text())
    fleet = report["fleets"]["mini-hetero2"]
    n = fleet["workload"]["measure"]["requests"]
    assert n >= 2
    routers = [r["router"] for r in fleet["results"]]
    assert routers == ["sglang:round_robin", "lodestar:cold"]
    for r in fleet["results"]:
        assert r["metrics"]["n"] == n, r["invalid_reasons"]
        assert r["metrics"]["errors"] == 0, r["errors_by_class"]
        assert r["emulator"]["finished"] == n  # a fresh emulator per router: it saw exactly this run
        assert Path(r["bench_json"]).exists()
    assert "--policy" in fleet["results"][0]["router_argv"]
    assert "gateway_fallbacks" in fleet["results"][1] and "model_after" in fleet["results"][1]
    assert (out / "mini-hetero2" / "plots" / "ttft_cdf.png").exists()
    assert "| sglang-router round_robin |" in (out / "compare.md").read_text()
    assert "Lodestar cold" in proc.stdout
    # Lodestar's gateway says its own time per answer (Server-Timing); the peer says nothing
    peer_run, lodestar_run = (json.loads(Path(r["bench_json"]).read_text()) for r in fleet["results"])
    assert peer_run["gateway_wall_ms"] is None
    own = lodestar_run["gateway_wall_ms"]
    assert own is not None and own["n"] == n and 0 < own["p50"] <= own["p99"]
    assert all(rec["gateway_wall_ms"] is not None for rec in lodestar_run["records"])
    assert proc.stdout.count("gateway's own P50 / P99") == 1


WARM_SPEC = SPEC.replace("rate_rps: 2", "rate_rps: 4")


@pytest.mark.slow
def test_compare_lodestar_warm_keeps_the_model_across_restarts(tmp_path: Path) -> None:
    """Lodestar warmed: the warm-up slice trains a model; every process is restarted (cold KV
    cache, empty prefix index, empty broker) with only that model put back on the new broker,
    and the router decides with it before the measured slice; the emulator saw only the
    measured slice."""
    spec = tmp_path / "w.yaml"
    spec.write_text(WARM_SPEC)
    out = tmp_path / "out"
    argv = [
        sys.executable, "-m", "lodestar", "bench", "compare",
        "--fleet", "mini-hetero2", "--trace", str(spec), "--router", "lodestar:warm",
        "--load", "0.006", "--duration", "8", "--warmup-start", "100", "--warmup-duration", "60",
        "--time-scale", "1", "--ttft-cap", "30", "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    row = json.loads((out / "compare.json").read_text())["fleets"]["mini-hetero2"]["results"][0]
    n = row["metrics"]["n"]
    assert row["router"] == "lodestar:warm" and n >= 2, row["invalid_reasons"]
    warm = row["warmup"]
    assert warm["requests"] >= 50 and warm["errors"] == 0
    version = warm["model_after_warmup"]["active_version"]
    assert warm["model_after_warmup"]["confident"] and version >= 1
    assert warm["model_after_restart"]["active_version"] >= version and warm["model_after_restart"]["confident"]
    assert row["metrics"]["errors"] == 0, row["errors_by_class"]
    assert row["emulator"]["finished"] == n  # restarted: none of the warm-up's requests
