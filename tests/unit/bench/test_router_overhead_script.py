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
from router_overhead import main, py_spy_executable  # noqa: E402


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
