"""``lodestar grafana``: dashboards as code (generate, validate) and bootstrap of an existing Grafana.

The dashboards are built from ``src/lodestar/grafana`` and the named history queries, and
committed under ``infra/grafana/``; compose provisions them, ``bootstrap`` uploads them.
A bad option or a failed check prints what is wrong and exits with status 1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

DIR_HELP = "the infra/grafana directory (default: this source tree's)"


def build() -> typer.Typer:
    app = typer.Typer(help="Grafana dashboards as code: generate, validate, bootstrap.", no_args_is_help=True)

    @app.command()
    def generate(
        check: Annotated[
            bool, typer.Option("--check", help="only compare the committed files; exit 1 on drift")
        ] = False,
        directory: Annotated[Path | None, typer.Option("--dir", help=DIR_HELP)] = None,
    ) -> None:
        """Write the dashboards JSON and the provisioning files from the specs and named queries."""
        from lodestar.grafana.generate import default_grafana_dir, drift, render, write
        from lodestar.grafana.sql import load_catalog

        target = directory or default_grafana_dir()
        files = render(load_catalog())
        if check:
            problems = drift(target, files)
            for problem in problems:
                typer.echo(problem, err=True)
            if problems:
                _fail(f"{len(problems)} file(s) under {target} differ; run `lodestar grafana generate`")
            typer.echo(f"{len(files)} generated file(s) under {target} are up to date")
            return
        for path in write(target, files):
            typer.echo(f"wrote {path}")

    @app.command()
    def validate(
        directory: Annotated[Path | None, typer.Option("--dir", help=DIR_HELP)] = None,
        dsn: Annotated[
            str | None,
            typer.Option(help="also run every panel's SQL on this ClickHouse: chdb:///dir or http://user@host:8123/db"),
        ] = None,
        since: Annotated[str, typer.Option("--from", help="range start for --dsn (ISO, epoch s, now-1h)")] = "now-1h",
        until: Annotated[str, typer.Option("--to", help="range end for --dsn")] = "now",
        allow_empty: Annotated[
            bool,
            typer.Option(help="with --dsn, accept any panel without rows (not only the healthy-when-empty ones)"),
        ] = False,
    ) -> None:
        """Check the committed dashboards (ids, grid, data sources, variables, SDK types) and,
        with --dsn, run their SQL (macros expanded as the ClickHouse plugin does) and check the rows.
        Every panel must return rows, except the ones that are empty when the system is healthy
        (the dead letters): their SQL must still run."""
        models = _load_models(directory)
        from lodestar.grafana.datasources import PROVISIONED
        from lodestar.grafana.validate import validate_dashboard

        failed = 0
        for name, model in models:
            for problem in validate_dashboard(model, PROVISIONED):
                failed += 1
                typer.echo(f"{name}: {problem}", err=True)
        typer.echo(f"{len(models)} dashboard(s) checked statically, {failed} problem(s)")
        if dsn:
            failed += _run_sql(models, dsn, since, until, not allow_empty)
        if failed:
            raise typer.Exit(1)

    @app.command()
    def bootstrap(
        url: Annotated[str | None, typer.Option(help="Grafana base URL [env LODESTAR_GRAFANA_URL]")] = None,
        token: Annotated[
            str | None, typer.Option(help="service-account token; better: env LODESTAR_GRAFANA_TOKEN")
        ] = None,
        clickhouse_host: Annotated[str | None, typer.Option(help="ClickHouse host as Grafana reaches it")] = None,
        clickhouse_port: Annotated[int | None, typer.Option(help="ClickHouse port (8123 http, 9000 native)")] = None,
        clickhouse_database: Annotated[str | None, typer.Option(help="ClickHouse database")] = None,
        clickhouse_user: Annotated[
            str | None, typer.Option(help="ClickHouse user (password: env LODESTAR_GRAFANA_CLICKHOUSE_PASSWORD)")
        ] = None,
        prometheus_url: Annotated[
            str | None, typer.Option(help="Prometheus URL for the services' drop counters ('' = none)")
        ] = None,
        folder_uid: Annotated[str | None, typer.Option(help="folder uid [lodestar]")] = None,
        directory: Annotated[Path | None, typer.Option("--dir", help=DIR_HELP)] = None,
    ) -> None:
        """Create or update the data sources (fixed uids), the folder and the dashboards in a
        running Grafana through its HTTP API."""
        from lodestar.grafana.bootstrap import BootstrapError, connect, plan
        from lodestar.grafana.bootstrap import bootstrap as run_bootstrap
        from lodestar.grafana.settings import GrafanaSettings
        from lodestar.settings_input import SettingsInputError, load_settings

        overrides: dict[str, Any] = {
            "url": url,
            "token": token,
            "clickhouse_host": clickhouse_host,
            "clickhouse_port": clickhouse_port,
            "clickhouse_database": clickhouse_database,
            "clickhouse_user": clickhouse_user,
            "prometheus_url": prometheus_url,
            "folder_uid": folder_uid,
        }
        try:
            settings = load_settings(GrafanaSettings, overrides)
        except SettingsInputError as exc:
            _fail(str(exc))
        models = [model for _, model in _load_models(directory)]
        try:
            report = run_bootstrap(connect(settings), plan(settings, models))
        except BootstrapError as exc:
            _fail(str(exc))
        for item in report.created:
            typer.echo(f"created {item}")
        for item in report.updated:
            typer.echo(f"updated {item}")
        for item in report.dashboards:
            typer.echo(f"uploaded dashboard {item}")
        if not settings.prometheus_url:
            typer.echo("note: no --prometheus-url, so the 'Events dropped by the services' panel has no data source")

    return app


def _load_models(directory: Path | None) -> list[tuple[str, dict[str, Any]]]:
    from lodestar.grafana.generate import DASHBOARDS_SUBDIR, default_grafana_dir

    folder = (directory or default_grafana_dir()) / DASHBOARDS_SUBDIR
    paths = sorted(folder.glob("*.json"))
    if not paths:
        _fail(f"no dashboard JSON in {folder}; run `lodestar grafana generate`")
    models = []
    for path in paths:
        try:
            model = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            _fail(f"{path}: {exc}")
        if not isinstance(model, dict):
            _fail(f"{path}: not a JSON object")
        models.append((path.name, model))
    return models


def _run_sql(models: list[tuple[str, dict[str, Any]]], dsn: str, since: str, until: str, require_rows: bool) -> int:
    from lodestar.grafana.dashboards import DASHBOARDS
    from lodestar.grafana.spec import healthy_empty_panels
    from lodestar.grafana.sqlcheck import check_sql
    from lodestar_history.params import parse_time
    from lodestar_history.settings import HistorySettings
    from lodestar_history.store import HistoryStore, StoreUnavailableError
    from lodestar_history.target import HistoryConfigError, parse_target

    now = datetime.now(UTC)
    try:
        from_ts, to_ts = parse_time(since, now), parse_time(until, now)
        store = HistoryStore(parse_target(HistorySettings(clickhouse_dsn=dsn)))
        store.open()
    except ValueError as exc:
        _fail(f"bad --from/--to: {exc}")
    except (HistoryConfigError, StoreUnavailableError) as exc:
        _fail(str(exc))
    healthy_empty = healthy_empty_panels(DASHBOARDS)
    try:
        runs = check_sql(store.reader, [m for _, m in models], from_ts, to_ts, require_rows, healthy_empty)
    finally:
        store.close()
    failed = 0
    for run in runs:
        if run.problems:
            status = "; ".join(run.problems)
        else:
            status = "empty (healthy when empty)" if run.healthy_empty else "ok"
        failed += bool(run.problems)
        typer.echo(f"{run.site.dashboard} {run.site.where}: {run.rows} row(s) {status}")
    typer.echo(f"{len(runs)} ClickHouse quer(ies) run on {dsn} for {from_ts:%Y-%m-%d %H:%M:%S}Z…{to_ts:%H:%M:%S}Z")
    return failed


def _fail(message: str) -> NoReturn:
    typer.echo(f"lodestar grafana: {message}", err=True)
    raise typer.Exit(1)
