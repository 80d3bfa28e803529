"""``lodestar report``: the Grafana dashboards' panels as PNG charts, without Grafana.

Reads the named history queries from a running history service (``--url``, default) or a
chDB directory when no service runs (``--chdb DIR``; chDB allows one process per directory).
Exit status 1 with one line saying what to do when the source is unreachable, locked or
missing, or when no panel has data in the window.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer


def report(
    url: Annotated[
        str | None, typer.Option(help="history service URL (default: LODESTAR_HISTORY_HOST/PORT, :8090)")
    ] = None,
    chdb: Annotated[
        Path | None, typer.Option(help="read this chDB history directory directly (no service may hold it)")
    ] = None,
    since: Annotated[str, typer.Option("--from", help="window start: ISO 8601, epoch s or now-1h")] = "now-1h",
    until: Annotated[str, typer.Option("--to", help="window end")] = "now",
    bucket: Annotated[int | None, typer.Option(min=1, help="bucket width in seconds (default: ~120 points)")] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="dashboard variable NAME=VALUE, e.g. policy=lodestar (repeatable)")
    ] = None,
    dashboard: Annotated[
        list[str] | None, typer.Option(help="only this dashboard uid (repeatable), e.g. lodestar-routing")
    ] = None,
    out: Annotated[Path, typer.Option(help="output directory (PNGs, index.html, index.md)")] = Path("out/report"),
) -> None:
    """Render every dashboard panel to a PNG (matplotlib) and write an index listing them."""
    from lodestar.grafana.dashboards import DASHBOARDS
    from lodestar.grafana.sql import load_catalog
    from lodestar.report.build import Window, build_report
    from lodestar.report.source import ApiSource, ChdbSource, HistorySource, ReportSourceError
    from lodestar_history.params import parse_window
    from lodestar_history.settings import HistorySettings

    if url and chdb:
        _fail("give --url (a running history service) or --chdb DIR (no service running), not both")
    overrides = _parse_vars(var or [])
    specs = tuple(d for d in DASHBOARDS if not dashboard or d.uid in dashboard)
    if not specs:
        _fail(f"no dashboard {dashboard}; known: {', '.join(d.uid for d in DASHBOARDS)}")
    now = datetime.now(UTC)
    try:
        window = Window.of(*parse_window(since, until, now), bucket)
    except ValueError as exc:
        _fail(f"bad --from/--to: {exc}")
    try:
        source: HistorySource = ChdbSource(chdb, load_catalog()) if chdb else ApiSource(url or HistorySettings().url)
    except ReportSourceError as exc:
        _fail(str(exc))
    try:
        results = build_report(source, specs, window, overrides, out)
    except ReportSourceError as exc:
        _fail(str(exc))
    finally:
        source.close()
    for r in results:
        where = r.image if r.image is not None else r.note
        typer.echo(f"{r.status:<7} {r.dashboard.uid}/{r.panel.key}: {where}")
    typer.echo(f"index: {out / 'index.html'} ({sum(r.status == 'ok' for r in results)}/{len(results)} panels drawn)")


def _parse_vars(items: list[str]) -> dict[str, str]:
    values = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            _fail(f"bad --var {item!r}: expected NAME=VALUE")
        values[name.strip()] = value
    return values


def _fail(message: str) -> NoReturn:
    typer.echo(f"lodestar report: {message}", err=True)
    raise typer.Exit(1)
