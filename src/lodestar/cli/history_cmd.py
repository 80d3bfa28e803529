"""``lodestar history``: the event-history service (sink + query API), its DDL and its queries.

Configuration comes from ``LODESTAR_HISTORY_*`` (storage, batching, API port) and
``LODESTAR_KAFKA_*`` (broker). Bad settings, an unknown query or a bad parameter print one line
naming it and exit with status 1, never a traceback.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from lodestar.bus.settings import KafkaSettings
from lodestar.logs import configure_logging
from lodestar.settings_input import SettingsInputError, load_settings
from lodestar_history.client import HistoryClient, HistoryClientError
from lodestar_history.migrate import MigrationError, load_migrations
from lodestar_history.queries import QueryCatalog
from lodestar_history.settings import HistorySettings
from lodestar_history.store import HistoryStore, StoreUnavailableError
from lodestar_history.target import HistoryConfigError, parse_target

URL_HELP = "history service URL (default: http://LODESTAR_HISTORY_HOST:LODESTAR_HISTORY_PORT)"


def build() -> typer.Typer:
    app = typer.Typer(
        help="Event history in ClickHouse: the sink + query service, its DDL, named queries.",
        no_args_is_help=True,
    )

    @app.command()
    def serve(
        host: Annotated[str | None, typer.Option(help="API host (default: LODESTAR_HISTORY_HOST)")] = None,
        port: Annotated[int | None, typer.Option(help="API port (default: LODESTAR_HISTORY_PORT, 8090)")] = None,
    ) -> None:
        """Consume every topic into ClickHouse and serve /query, /queries, /health, /metrics.

        Storage: LODESTAR_HISTORY_CLICKHOUSE_DSN, chdb:///abs/dir (embedded, default
        chdb:.lodestar/data/history; this process then owns the directory) or
        http(s)://user@host:8123/database with LODESTAR_HISTORY_CLICKHOUSE_PASSWORD.
        Applies the DDL first. Runs until Ctrl-C / SIGTERM.
        """
        from lodestar_history.service import HistoryService

        overrides: dict[str, Any] = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
        settings = _settings(**overrides)
        try:
            service = HistoryService.build(settings, _kafka())
            configure_logging(settings.log_level)
            service.run()
        except (HistoryConfigError, StoreUnavailableError, MigrationError) as err:
            _fail(str(err))

    @app.command()
    def migrate() -> None:
        """Create the database and tables (idempotent), align retention TTLs, and exit.

        With chDB this fails while `lodestar history serve` holds the directory (the service
        migrates at start anyway).
        """
        settings = _settings()
        try:
            target = parse_target(settings)
            migrations = load_migrations(settings.sql_dir)
            store = HistoryStore(target)
            store.open()
        except (HistoryConfigError, StoreUnavailableError) as err:
            _fail(str(err))
        try:
            report = store.migrate(migrations, settings.retention_params())
        except (HistoryConfigError, MigrationError) as err:
            _fail(str(err))
        finally:
            store.close()
        typer.echo(f"{target.describe()}: applied {len(report.files)} file(s), {report.statements} statement(s)")
        for table, old, new in report.retention_changes:
            typer.echo(f"  {table}: retention {old if old is not None else '?'} → {new} days")

    @app.command()
    def query(
        name: Annotated[str, typer.Argument(help="named query (see `lodestar history queries`)")],
        param: Annotated[
            list[str] | None,
            typer.Option("--param", "-p", help="key=value, repeatable; times: ISO 8601, epoch s or now-15m"),
        ] = None,
        url: Annotated[str | None, typer.Option(help=URL_HELP)] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the service's JSON answer")] = False,
        max_rows: Annotated[int, typer.Option(help="rows to print in the table (0 = all)")] = 200,
    ) -> None:
        """Ask a running history service for a named query and print the rows as a table."""
        params = _parse_params(param or [])
        client = HistoryClient(url or _settings().url)
        try:
            answer = client.query(name, params)
        except HistoryClientError as err:
            _fail(str(err))
        if as_json:
            typer.echo(json.dumps(answer, indent=2))
            return
        _print_rows(answer, max_rows)

    @app.command("queries")
    def list_queries() -> None:
        """List the named queries and their parameters (from LODESTAR_HISTORY_SQL_DIR/queries)."""
        settings = _settings()
        try:
            catalog = QueryCatalog.load(settings.sql_dir / "queries")
        except HistoryConfigError as err:
            _fail(str(err))
        table = Table(title=f"Named queries in {settings.sql_dir / 'queries'}", show_lines=True)
        for column in ("name", "parameters (default)", "what"):
            table.add_column(column)
        for q in catalog:
            params = "\n".join(f"{p.name}" + ("" if p.default is None else f" ({p.default!r})") for p in q.params)
            table.add_row(q.name, params, q.description)
        Console(width=160).print(table)

    @app.command()
    def health(url: Annotated[str | None, typer.Option(help=URL_HELP)] = None) -> None:
        """Print a running service's health; exit 1 unless ClickHouse answers and the consumer runs."""
        client = HistoryClient(url or _settings().url, timeout_s=10.0)
        try:
            answer = client.health()
        except HistoryClientError as err:
            _fail(str(err))
        typer.echo(json.dumps(answer, indent=2))
        raise typer.Exit(0 if answer.get("status") == "ok" else 1)

    return app


def _settings(**overrides: Any) -> HistorySettings:
    try:
        return load_settings(HistorySettings, overrides)
    except SettingsInputError as err:
        _fail(str(err))


def _kafka() -> KafkaSettings:
    try:
        return load_settings(KafkaSettings)
    except SettingsInputError as err:
        _fail(str(err))


def _parse_params(items: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _fail(f"bad --param {item!r}: expected key=value")
        params[key.strip()] = value
    return params


def _print_rows(answer: dict[str, Any], max_rows: int) -> None:
    columns = [c["name"] for c in answer.get("columns", [])]
    rows = answer.get("rows", [])
    shown = rows if max_rows <= 0 else rows[:max_rows]
    table = Table(title=f"{answer.get('name')}: {len(rows)} row(s) in {answer.get('elapsed_s', 0.0):.3f}s")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in shown:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console(width=200).print(table)
    if len(shown) < len(rows):
        typer.echo(f"… {len(rows) - len(shown)} more row(s); use --max-rows 0 or --json")


def _cell(value: Any) -> str:
    if value is None:
        return "∅"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
