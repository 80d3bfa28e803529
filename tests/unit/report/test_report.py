"""``lodestar report``: PNGs and an index from a chDB directory or a running history service,
and a clear one-line error when the source is unreachable, locked, missing or empty.

The report process opens chDB itself, so it runs as a subprocess (chDB hosts one directory
per process; the history tests hold theirs); the dataset is the history tests' one, written
by tests/unit/grafana/history_fixture.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from lodestar.cli.app import build_app
from lodestar.grafana.dashboards import DASHBOARDS
from lodestar.grafana.spec import PanelSpec
from lodestar.localinfra.ports import free_port
from lodestar.report.build import Window
from lodestar.report.charts import has_values, series_of

LODESTAR = Path(sys.executable).with_name("lodestar")
FIXTURE = Path(__file__).resolve().parents[1] / "grafana" / "history_fixture.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    directory = tmp_path_factory.mktemp("report-chdb") / "history"
    out = subprocess.run(
        [sys.executable, str(FIXTURE), str(directory)], capture_output=True, text=True, timeout=120, check=True
    )
    return directory, json.loads(out.stdout.strip().splitlines()[-1])


def _report(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LODESTAR), "report", *args], capture_output=True, text=True, timeout=180, env=env or dict(os.environ)
    )


def test_report_from_a_chdb_directory(history_dir: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    directory, window = history_dir
    out = tmp_path / "report"
    result = _report("--chdb", str(directory), "--from", window["from_ts"], "--to", window["to_ts"], "--out", str(out))
    assert result.returncode == 0, result.stderr
    index = (out / "index.html").read_text()
    markdown = (out / "index.md").read_text()
    for dashboard in DASHBOARDS:
        assert dashboard.title in index and dashboard.title in markdown
        for panel in dashboard.panels:
            png = out / f"{dashboard.uid}__{panel.key}.png"
            if panel.query is None:
                assert not png.exists()
                assert "Prometheus panel" in index
                continue
            assert png.read_bytes()[:8] == PNG_MAGIC, f"{png.name}: {result.stdout}"
            assert f'src="{png.name}"' in index
    assert "Training metric: train_loss" in index  # the title's ${metric} took the variable's default
    assert "21/22 panels drawn" in result.stdout


def test_report_variables_filter_the_queries(history_dir: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    directory, window = history_dir
    out = tmp_path / "report"
    result = _report(
        "--chdb",
        str(directory),
        "--from",
        window["from_ts"],
        "--to",
        window["to_ts"],
        "--var",
        "policy=no-such-policy",
        "--dashboard",
        "lodestar-routing",
        "--out",
        str(out),
    )
    assert result.returncode == 1
    assert "lodestar report: no data between" in result.stderr
    assert "no data in the window" in (out / "index.md").read_text()


def test_report_through_a_running_history_service_and_the_locked_directory(
    history_dir: tuple[Path, dict[str, str]], tmp_path: Path, broker: str
) -> None:
    directory, window = history_dir
    port = free_port()
    env = {
        **os.environ,
        "LODESTAR_HISTORY_CLICKHOUSE_DSN": f"chdb://{directory}",
        "LODESTAR_HISTORY_PORT": str(port),
        "LODESTAR_KAFKA_BOOTSTRAP_SERVERS": broker,
        "LODESTAR_KAFKA_TOPIC_PREFIX": f"report{port}.",
    }
    service = subprocess.Popen(
        [str(LODESTAR), "history", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert service.poll() is None, service.stderr.read() if service.stderr else ""
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "history service did not become healthy"
            time.sleep(0.3)
        out = tmp_path / "via-api"
        result = _report("--url", url, "--from", window["from_ts"], "--to", window["to_ts"], "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert (out / "lodestar-routing__ttft_by_policy.png").read_bytes()[:8] == PNG_MAGIC
        assert "history service http://127.0.0.1" in (out / "index.md").read_text()

        locked = _report("--chdb", str(directory), "--out", str(tmp_path / "locked"))
        assert locked.returncode == 1
        assert "in use by another process" in locked.stderr
        assert "--url" in locked.stderr
    finally:
        service.terminate()
        service.wait(timeout=30)


def test_unreachable_service_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        build_app(), ["report", "--url", f"http://127.0.0.1:{free_port()}", "--out", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert result.output.startswith("lodestar report: no history service at http://127.0.0.1:")
    assert "--chdb DIR" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chdb", "{tmp}/nope"], "no chDB directory at"),
        (["--chdb", "{tmp}", "--url", "http://x"], "not both"),
        (["--var", "policy"], "bad --var 'policy'"),
        (["--chdb", "{tmp}", "--from", "now", "--to", "now-1h"], "the window is empty"),
        (["--from", "yesterday"], "bad --from/--to"),
        (["--dashboard", "nope"], "no dashboard ['nope']; known: lodestar-routing"),
    ],
)
def test_bad_options_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    argv = ["report", *(a.replace("{tmp}", str(tmp_path)) for a in args), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(build_app(), argv)
    assert result.exit_code == 1
    assert message in result.output


def test_directory_without_history_tables(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _report("--chdb", str(empty), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "has no history tables" in result.stderr


def test_series_follow_the_grafana_panel() -> None:
    panel = PanelSpec(
        key="k", title="t", description="", kind="timeseries", query="q", labels=("policy",), values=("a", "b")
    )
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {"t": (t0 + timedelta(seconds=60)).isoformat(), "policy": "p1", "a": 1, "b": None},
        {"t": t0.isoformat(), "policy": "p1", "a": 2, "b": None},
        {"t": t0, "policy": None, "a": 3, "b": 4.5},
    ]
    series = {s.name: s for s in series_of(panel, rows, {"a": "A", "b": "B"})}
    assert set(series) == {"p1 A", "p1 B", "A", "B"}
    assert series["p1 A"].values == (2.0, 1.0)  # sorted by time
    assert series["p1 A"].times[0] == t0
    assert has_values([series["p1 B"]]) is False
    assert has_values(list(series.values())) is True


def test_window_bucket_defaults_to_grafanas_interval() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert Window.of(t0, t0 + timedelta(hours=1)).bucket_s == 30
    assert Window.of(t0, t0 + timedelta(minutes=5)).bucket_s == 2
    assert Window.of(t0, t0 + timedelta(hours=1), bucket_s=60).bucket_s == 60
    with pytest.raises(ValueError, match="the window is empty"):
        Window.of(t0, t0)
