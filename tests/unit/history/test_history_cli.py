"""``lodestar history``: query a live API, migrate, list queries; clear one-line errors."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from history_helpers import WINDOW
from typer.testing import CliRunner

from lodestar.cli import history_cmd
from lodestar.localinfra.ports import free_port
from lodestar_history.api import build_app
from lodestar_history.metrics import HistoryMetrics
from lodestar_history.queries import QueryCatalog
from lodestar_history.settings import default_sql_dir
from lodestar_history.sink import SinkStatus
from lodestar_history.store import HistoryStore

runner = CliRunner()


@pytest.fixture(scope="module")
def api_url(history_dataset: HistoryStore) -> Iterator[str]:
    """The query API over the dataset, served by uvicorn on a free port in a thread."""
    app = build_app(
        history_dataset,
        QueryCatalog.load(default_sql_dir() / "queries"),
        HistoryMetrics(),
        lambda: SinkStatus(consumer_up=True),
    )
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    yield url
    server.should_exit = True
    thread.join(5)


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = runner.invoke(history_cmd.build(), list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_query_prints_a_table(api_url: str) -> None:
    code, out = _run("query", "ttft_by_policy", "--url", api_url, "-p", f"from_ts={WINDOW['from_ts']}",
                     "--param", f"to_ts={WINDOW['to_ts']}", "-p", "bucket_s=3600")  # fmt: skip
    assert code == 0, out
    assert "ttft_by_policy: 2 row(s)" in out
    assert "p1" in out
    assert "ttft_p50_s" in out


def test_query_json_output(api_url: str) -> None:
    code, out = _run("query", "event_counts", "--url", api_url, "--json", "-p", f"from_ts={WINDOW['from_ts']}",
                     "-p", f"to_ts={WINDOW['to_ts']}")  # fmt: skip
    assert code == 0, out
    assert '"table_name": "route_decisions"' in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["query", "no_such_query"], "unknown query 'no_such_query'"),
        (["query", "ttft_by_policy", "-p", "bucket_s=abc"], "parameter 'bucket_s' (UInt32): expected an integer"),
        (["query", "ttft_by_policy", "-p", "colour=red"], "has no parameter(s) ['colour']"),
        (["query", "ttft_by_policy", "-p", "bucket_s"], "bad --param 'bucket_s': expected key=value"),
    ],
    ids=["unknown-query", "bad-value", "unknown-param", "malformed-param"],
)
def test_query_errors_are_one_line_and_exit_1(api_url: str, args: list[str], message: str) -> None:
    code, out = _run(*args, "--url", api_url)
    assert code == 1
    assert message in out
    assert "Traceback" not in out


def test_query_without_a_service_says_how_to_start_one() -> None:
    code, out = _run("query", "event_counts", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 1
    assert "no history service at" in out
    assert "lodestar history serve" in out


def test_migrate_creates_the_tables_and_is_repeatable(chdb_dir: Path) -> None:
    env = {
        "LODESTAR_HISTORY_CLICKHOUSE_DSN": f"chdb://{chdb_dir}",
        "LODESTAR_HISTORY_CLICKHOUSE_DATABASE": f"cli_{uuid.uuid4().hex[:8]}",
    }
    code, out = _run("migrate", env=env)
    assert code == 0, out
    assert "applied 5 file(s), 5 statement(s)" in out
    code, out = _run("migrate", env={**env, "LODESTAR_HISTORY_RETENTION_DAYS": "7"})
    assert code == 0, out
    assert "route_decisions: retention 30 → 7 days" in out


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LODESTAR_HISTORY_CLICKHOUSE_DSN": "mysql://x"}, "unsupported scheme 'mysql'"),
        ({"LODESTAR_HISTORY_CLICKHOUSE_DSN": "http://u:pw@h/db"}, "not the DSN"),
        ({"LODESTAR_HISTORY_RETENTION_DAYS": "zero"}, "invalid LODESTAR_HISTORY_RETENTION_DAYS"),
        ({"LODESTAR_HISTORY_SQL_DIR": "/nonexistent"}, "is not a directory"),
    ],
    ids=["scheme", "password-in-dsn", "bad-number", "sql-dir"],
)
def test_migrate_config_errors(env: dict[str, str], message: str) -> None:
    code, out = _run("migrate", env=env)
    assert code == 1
    assert message in out
    assert "Traceback" not in out


def test_serve_with_a_bad_dsn_fails_before_serving() -> None:
    code, out = _run("serve", "--port", str(free_port()), env={"LODESTAR_HISTORY_CLICKHOUSE_DSN": "chdb://memory"})
    assert code == 1
    assert "name a directory" in out


def test_queries_lists_every_named_query() -> None:
    code, out = _run("queries")
    assert code == 0, out
    for name in QueryCatalog.load(default_sql_dir() / "queries").names():
        assert name in out


def test_help_of_every_command() -> None:
    for command in ("serve", "migrate", "query", "queries", "health"):
        code, out = _run(command, "--help")
        assert code == 0, out
    assert "LODESTAR_HISTORY_CLICKHOUSE_DSN" in _run("serve", "--help")[1]
