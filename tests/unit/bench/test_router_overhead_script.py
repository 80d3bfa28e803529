"""``benchmarks/router_overhead.py`` refuses bad arguments naming the option before it starts a
broker, trains a model or starts any server (it used to find an unknown path only after all of
that, and a missing py-spy only as a traceback mid-run)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "benchmarks" / "router_overhead.py"
sys.path.insert(0, str(SCRIPT.parent))
from router_overhead import main, py_spy_executable, ttft_targets  # noqa: E402


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--paths", "vllm,nope"], "--paths: unknown 'nope' (known: vllm, vllm-cache"),
        (["--paths", ","], "--paths: unknown nothing given"),
        (["--streams", "100,lots"], "--streams '100,lots': expected comma-separated stream counts"),
        (["--streams", "0"], "every level must be at least 1"),
        (["--requests", "-1"], "--requests must be at least 0, got -1"),
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    args: list[str], expected: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", [str(SCRIPT), *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert expected in err
    assert out == ""  # nothing ran


def test_py_spy_is_found_on_the_path_or_beside_the_interpreter_else_none(tmp_path: Path) -> None:
    bin_dir, venv = tmp_path / "bin", tmp_path / "venv"
    bin_dir.mkdir()
    venv.mkdir()
    python = venv / "python"
    assert py_spy_executable(path=str(bin_dir), python=str(python)) is None
    beside = venv / "py-spy"
    beside.write_text("#!/bin/sh\n")
    assert py_spy_executable(path=str(bin_dir), python=str(python)) is None  # not executable
    beside.chmod(0o755)
    assert py_spy_executable(path=str(bin_dir), python=str(python)) == str(beside)
    on_path = bin_dir / "py-spy"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    assert py_spy_executable(path=str(bin_dir), python=str(python)) == str(on_path)


def _added(p50: float, p99: float) -> dict[str, float]:
    return {"added_p50_ms": p50, "added_p99_ms": p99}


def test_targets_hold_lodestar_against_each_vllm_policy_measured_naming_the_default() -> None:
    rows = ttft_targets(
        {"lodestar-embedded": _added(1.3, 1.6), "vllm": _added(0.5, 0.0), "vllm-cache": _added(1.8, 2.4)}
    )
    by_target = {row["target"]: row for row in rows}
    assert by_target["lodestar-embedded added TTFT P50 <= 2 ms"]["met"] is True
    assert by_target["lodestar-embedded added TTFT P99 <= 5 ms"]["met"] is True
    rr = by_target["lodestar-embedded added TTFT P50 <= 1.5 x vllm-router round_robin's"]
    assert rr["met"] is False
    assert rr["ratio"] == pytest.approx(2.6)
    default = by_target["lodestar-embedded added TTFT P50 <= 1.5 x vllm-router cache_aware (its default)'s"]
    assert default["met"] is True
    assert default["ratio"] == pytest.approx(1.3 / 1.8)
    # a reference that adds nothing measurable gives no verdict, not a pass
    undefined = by_target["lodestar-embedded added TTFT P99 <= 1.5 x vllm-router round_robin's"]
    assert undefined["met"] is None
    assert undefined["ratio"] is None
    assert len(rows) == 6  # no row for a path that was not measured (lodestar, sglang)
