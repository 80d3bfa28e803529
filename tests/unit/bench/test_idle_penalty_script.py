"""``benchmarks/idle_penalty.py`` as users run it: a short run writes every step under every
condition, and bad arguments are refused naming the option. Nothing here is timed: the
figures themselves are the benchmark's business."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "benchmarks" / "idle_penalty.py"
STEPS = ["parse", "decide-1", "decide-8", "parse+decide-1", "control"]
CONDITIONS = ["repeated", "after sleep", "after spin"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )


def test_a_short_run_reports_every_step_under_every_condition(tmp_path: Path) -> None:
    out = tmp_path / "idle.json"
    proc = _run("--trials", "10", "--gap-ms", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["trials"] == 10 and report["gap_ms"] == 1.0
    assert [r["step"] for r in report["rows"]] == STEPS
    for row in report["rows"]:
        for condition in CONDITIONS:
            cell = row[condition]
            assert cell["n"] == 10
            assert 0 < cell["p50_us"] <= cell["p90_us"]
        assert row["sleep_over_repeated"] == pytest.approx(row["after sleep"]["p50_us"] / row["repeated"]["p50_us"])
    for step in STEPS:
        assert step in proc.stdout


@pytest.mark.parametrize(
    ("args", "option"),
    [(["--trials", "5"], "--trials"), (["--gap-ms", "0"], "--gap-ms"), (["--gap-ms", "x"], "--gap-ms")],
)
def test_bad_arguments_are_refused_naming_the_option(tmp_path: Path, args: list[str], option: str) -> None:
    out = tmp_path / "idle.json"
    proc = _run(*args, "--json", str(out))
    assert proc.returncode == 2
    assert option in proc.stderr
    assert not out.exists()
