"""Every ClickHouse query of the committed dashboards — each panel target and each query
variable — runs on chDB (ClickHouse 26.9) against the history tests' dataset, with Grafana's
variables at their defaults and the ClickHouse plugin's macros expanded for the dataset's
window, and returns rows shaped as the plugin needs them.

chDB hosts one directory per process (the history tests hold theirs for the session), so
the dataset is written and queried by subprocesses (history_fixture.py, run_panels.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lodestar.grafana.generate import default_grafana_dir
from lodestar.grafana.sqlcheck import query_sites

HERE = Path(__file__).resolve().parent
LODESTAR = Path(sys.executable).with_name("lodestar")
MODELS = [json.loads(p.read_text()) for p in sorted((default_grafana_dir() / "dashboards").glob("*.json"))]
SITES = [f"{s.dashboard}: {s.where}" for m in MODELS for s in query_sites(m)]


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("grafana-chdb") / "history"
    out = subprocess.run(
        [sys.executable, str(HERE / "history_fixture.py"), str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    window: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
    return directory, window


@pytest.fixture(scope="module")
def results(history_dir: tuple[Path, dict[str, str]]) -> dict[str, Any]:
    directory, window = history_dir
    out = subprocess.run(
        [sys.executable, str(HERE / "run_panels.py"), str(directory), window["from_ts"], window["to_ts"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    answer: dict[str, Any] = json.loads(out.stdout)
    return answer


def test_every_clickhouse_query_of_every_dashboard_was_run(results: dict[str, Any]) -> None:
    ran = [f"{r['dashboard']}: {r['where']}" for r in results["runs"]]
    assert ran == SITES
    assert len(ran) >= 20


@pytest.mark.parametrize("site", SITES)
def test_query_runs_on_chdb_and_returns_rows(results: dict[str, Any], site: str) -> None:
    run = next(r for r in results["runs"] if f"{r['dashboard']}: {r['where']}" == site)
    assert run["problems"] == [], f"{site}\n{run['sql']}"
    assert run["rows"] >= 1
    assert "$" not in run["sql"], "a variable or macro was left unexpanded"
    if run["kind"] == "timeseries":
        assert run["types"][0].startswith("DateTime")


def test_broken_queries_are_caught(results: dict[str, Any]) -> None:
    problems = [" ".join(r["problems"]) for r in results["broken"] if r["kind"] != "variable"]
    assert "Unknown expression identifier `ttft_p5O_s`" in problems[0]
    assert "Syntax error" in problems[1]
    assert "the first column must be a DateTime" in problems[2]
    assert problems[3] == "no rows"


def test_cli_validate_runs_the_sql_on_a_chdb_directory(
    history_dir: tuple[Path, dict[str, str]], results: dict[str, Any]
) -> None:
    directory, window = history_dir
    out = subprocess.run(
        [
            str(LODESTAR),
            "grafana",
            "validate",
            "--dsn",
            f"chdb://{directory}",
            "--from",
            window["from_ts"],
            "--to",
            window["to_ts"],
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(SITES)} ClickHouse quer(ies) run" in out.stdout


def test_cli_validate_fails_when_the_window_has_no_rows(history_dir: tuple[Path, dict[str, str]]) -> None:
    directory, _ = history_dir
    out = subprocess.run(
        [
            str(LODESTAR),
            "grafana",
            "validate",
            "--dsn",
            f"chdb://{directory}",
            "--from",
            "2020-01-01T00:00:00Z",
            "--to",
            "2020-01-01T01:00:00Z",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert "0 row(s) no rows" in out.stdout
