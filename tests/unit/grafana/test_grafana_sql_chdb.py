"""Every ClickHouse query of the committed dashboards — each panel target and each query
variable — runs on chDB (ClickHouse 26.9) against the history tests' dataset, with Grafana's
variables at their defaults and the ClickHouse plugin's macros expanded for the dataset's
window, and returns rows shaped as the plugin needs them. On a window without events every
panel fails for want of rows, except the dead-letter panels (healthy when empty), whose SQL must
still run; a healthy dataset (no dead letters) passes ``lodestar grafana validate`` as it is.

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

from lodestar.grafana.dashboards import DASHBOARDS
from lodestar.grafana.generate import default_grafana_dir
from lodestar.grafana.spec import healthy_empty_panels
from lodestar.grafana.sqlcheck import query_sites

HERE = Path(__file__).resolve().parent
LODESTAR = Path(sys.executable).with_name("lodestar")
MODELS = [json.loads(p.read_text()) for p in sorted((default_grafana_dir() / "dashboards").glob("*.json"))]
SITES = [f"{s.dashboard}: {s.where}" for m in MODELS for s in query_sites(m)]
PANEL_SITES = [f"{s.dashboard}: {s.where}" for m in MODELS for s in query_sites(m) if s.kind != "variable"]
HEALTHY_EMPTY = [
    f"{s.dashboard}: {s.where}"
    for m in MODELS
    for s in query_sites(m, healthy_empty_panels(DASHBOARDS))
    if s.empty_when_healthy
]
DEAD_LETTER_SITES = [
    "lodestar-pipeline: panel 1 (Dead letters per source topic) target A",
    "lodestar-pipeline: panel 5 (Newest dead letters) target A",
]
#: the one panel with rows on a window without events (a row per table, zeros included)
EVENT_COUNTS_SITE = "lodestar-pipeline: panel 4 (Events stored per table) target A"
EMPTY_WINDOW = ["--from", "2020-01-01T00:00:00Z", "--to", "2020-01-01T01:00:00Z"]  # run_panels.EMPTY_WINDOW


def _history_dir(directory: Path, *options: str) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, str(HERE / "history_fixture.py"), str(directory), *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    window: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
    return window


def _validate(directory: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LODESTAR), "grafana", "validate", "--dsn", f"chdb://{directory}", *options],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _by_site(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{r['dashboard']}: {r['where']}": r for r in runs}


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("grafana-chdb") / "history"
    return directory, _history_dir(directory)


@pytest.fixture(scope="module")
def healthy_history_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The same dataset without dead letters: what a healthy run stores."""
    directory = tmp_path_factory.mktemp("grafana-chdb-healthy") / "history"
    return directory, _history_dir(directory, "--without-dead-letters")


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


def test_the_dead_letter_panels_are_the_healthy_empty_sites_of_the_committed_json() -> None:
    assert HEALTHY_EMPTY == DEAD_LETTER_SITES


def test_a_healthy_empty_panel_without_rows_passes(results: dict[str, Any]) -> None:
    empty = _by_site(results["empty"])
    for site in DEAD_LETTER_SITES:
        run = empty[site]
        assert run["empty_when_healthy"], site
        assert (run["rows"], run["problems"]) == (0, []), f"{site}\n{run['sql']}"


def test_any_other_panel_without_rows_still_fails(results: dict[str, Any]) -> None:
    empty = _by_site(results["empty"])
    no_rows = {site for site, run in empty.items() if run["problems"] == ["no rows"]}
    assert no_rows == set(PANEL_SITES) - set(DEAD_LETTER_SITES) - {EVENT_COUNTS_SITE}
    assert len(no_rows) >= 15
    assert not any(empty[site]["empty_when_healthy"] for site in no_rows)


def test_a_healthy_empty_panel_with_broken_sql_still_fails(results: dict[str, Any]) -> None:
    runs = _by_site(results["broken_empty"])
    for site in DEAD_LETTER_SITES:
        run = runs[site]
        assert run["empty_when_healthy"], site
        assert run["rows"] == 0
        assert len(run["problems"]) == 1 and run["problems"][0].startswith("ClickHouse rejected the query"), run
    assert "Unknown expression identifier `letters`" in runs[DEAD_LETTER_SITES[0]]["problems"][0]
    assert "dead_letterz" in runs[DEAD_LETTER_SITES[1]]["problems"][0]


def test_cli_validate_runs_the_sql_on_a_chdb_directory(
    history_dir: tuple[Path, dict[str, str]], results: dict[str, Any]
) -> None:
    directory, window = history_dir
    out = _validate(directory, "--from", window["from_ts"], "--to", window["to_ts"])
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{len(SITES)} ClickHouse quer(ies) run" in out.stdout
    assert "healthy when empty" not in out.stdout  # this dataset has dead letters


def test_cli_validate_passes_a_healthy_run_without_dead_letters(
    healthy_history_dir: tuple[Path, dict[str, str]],
) -> None:
    directory, window = healthy_history_dir
    out = _validate(directory, "--from", window["from_ts"], "--to", window["to_ts"])
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("lodestar-")]
    assert len(lines) == len(SITES)
    empty = [line for line in lines if line.endswith(": 0 row(s) empty (healthy when empty)")]
    assert [line.split(": ")[0] for line in empty] == [s.replace(": ", " ", 1) for s in DEAD_LETTER_SITES]
    others = [line for line in lines if line not in empty]
    assert all(line.endswith(" ok") and ": 0 row(s)" not in line for line in others), out.stdout


def test_cli_validate_fails_when_the_window_has_no_rows(history_dir: tuple[Path, dict[str, str]]) -> None:
    directory, _ = history_dir
    out = _validate(directory, *EMPTY_WINDOW)
    assert out.returncode == 1
    assert "lodestar-routing panel 1 (TTFT p50 / p99 by policy) target A: 0 row(s) no rows" in out.stdout
    assert out.stdout.count("0 row(s) empty (healthy when empty)") == 2
    assert "lodestar-pipeline panel 5 (Newest dead letters) target A: 0 row(s) empty (healthy when empty)" in out.stdout


def test_cli_validate_allow_empty_accepts_every_panel_without_rows(history_dir: tuple[Path, dict[str, str]]) -> None:
    directory, _ = history_dir
    out = _validate(directory, *EMPTY_WINDOW, "--allow-empty")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "lodestar-routing panel 1 (TTFT p50 / p99 by policy) target A: 0 row(s) ok" in out.stdout
    assert "no rows" not in out.stdout
