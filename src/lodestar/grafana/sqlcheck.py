"""Run every ClickHouse query of the dashboards the way Grafana would, and check the answers.

For each panel target and each query variable: the SQL is expanded (:func:`macros.expand`:
variables at their dashboard defaults, the plugin's macros for a given range, Grafana's
interval for the panel's ``maxDataPoints``/``interval``), run on a ClickHouse client (chDB or a
server, through clickhouse-connect) and checked:

- it runs and returns at least one row (``require_rows``), except a panel listed as
  healthy when empty (:func:`lodestar.grafana.spec.healthy_empty_panels`: no dead letters is
  no rows), whose query must still run (without rows there is no shape to check);
- a time-series target's rows convert to wide series as the plugin does it (sqlds
  ``LongToWide``): the first column is a DateTime, every other column a string (a label) or a
  number (a value), at least one value column with a non-NULL value, rows in ascending time;
- a variable query answers ``value, text`` columns.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from lodestar.grafana.datasources import CLICKHOUSE_TYPE
from lodestar.grafana.macros import MacroError, QueryContext, expand, grafana_interval_ms

_TIME = re.compile(r"^(Nullable\()?DateTime(64)?\b")
_STRING = re.compile(r"^(Nullable\(|LowCardinality\()*(String|FixedString\(\d+\))\)*$")
_NUMBER = re.compile(r"^(Nullable\()?(U?Int\d+|Float\d+|Decimal(\d+)?\(.*\))\)?$")

Kind = Literal["timeseries", "table", "variable"]


@dataclass(frozen=True)
class ClickHouseQuerySite:
    """One ClickHouse query of a dashboard: a panel target or a query variable.
    ``empty_when_healthy``: no rows is fine even when rows are required."""

    dashboard: str
    where: str
    kind: Kind
    sql: str
    max_data_points: int = 1000
    min_interval: str | None = None
    empty_when_healthy: bool = False


@dataclass
class SqlRun:
    site: ClickHouseQuerySite
    expanded: str = ""
    columns: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def healthy_empty(self) -> bool:
        """It ran without problems and had no rows, as a healthy-when-empty panel may."""
        return self.site.empty_when_healthy and not self.problems and self.rows == 0


def variable_defaults(model: Mapping[str, Any]) -> dict[str, str]:
    """Each variable's value as the dashboard opens (constant: its query)."""
    values: dict[str, str] = {}
    for var in (model.get("templating") or {}).get("list") or []:
        if var.get("type") == "constant":
            values[var["name"]] = str(var.get("query", ""))
        else:
            values[var["name"]] = str((var.get("current") or {}).get("value", ""))
    return values


def query_sites(
    model: Mapping[str, Any], healthy_empty: AbstractSet[tuple[str, str]] = frozenset()
) -> Iterator[ClickHouseQuerySite]:
    """Every ClickHouse query of one dashboard model; a panel whose (dashboard uid, title) is in
    ``healthy_empty`` gives sites marked ``empty_when_healthy``."""
    uid = str(model.get("uid"))
    for panel in model.get("panels") or []:
        empty_ok = (uid, str(panel.get("title"))) in healthy_empty
        for target in panel.get("targets") or []:
            ds = target.get("datasource") or panel.get("datasource") or {}
            if ds.get("type") != CLICKHOUSE_TYPE:
                continue
            yield ClickHouseQuerySite(
                dashboard=uid,
                where=f"panel {panel.get('id')} ({panel.get('title')}) target {target.get('refId')}",
                kind="table" if target.get("format") == 1 else "timeseries",
                sql=str(target.get("rawSql", "")),
                max_data_points=int(panel.get("maxDataPoints") or 1000),
                min_interval=panel.get("interval") or None,
                empty_when_healthy=empty_ok,
            )
    for var in (model.get("templating") or {}).get("list") or []:
        if var.get("type") == "query" and (var.get("datasource") or {}).get("type") == CLICKHOUSE_TYPE:
            query = var.get("query")
            sql = query.get("rawSql", "") if isinstance(query, dict) else str(query)
            yield ClickHouseQuerySite(dashboard=uid, where=f"variable {var.get('name')}", kind="variable", sql=sql)


def _frame_problems(run: SqlRun, rows: list[tuple[Any, ...]]) -> list[str]:
    if not run.columns or not _TIME.match(run.types[0]):
        got = list(zip(run.columns, run.types, strict=True))
        return [f"the first column must be a DateTime for a time series, got {got}"]
    problems = []
    values = []
    for i, (name, ch_type) in enumerate(zip(run.columns[1:], run.types[1:], strict=True), start=1):
        if _NUMBER.match(ch_type):
            values.append(i)
        elif not _STRING.match(ch_type):
            problems.append(f"column {name!r} ({ch_type}) is neither a label (string) nor a value (number)")
    if not values:
        problems.append("no value (numeric) column")
    elif rows and not any(row[i] is not None for row in rows for i in values):
        problems.append("every value is NULL")
    times = [row[0] for row in rows]
    if any(b < a for a, b in itertools.pairwise(times)):
        problems.append("rows are not in ascending time order (the plugin cannot make wide series)")
    return problems


def run_site(
    client: Client,
    site: ClickHouseQuerySite,
    from_ts: datetime,
    to_ts: datetime,
    variables: Mapping[str, str],
    require_rows: bool = True,
) -> SqlRun:
    """Expand, run and check one query; problems are collected in the result, not raised."""
    run = SqlRun(site)
    interval = grafana_interval_ms(from_ts, to_ts, site.max_data_points, site.min_interval)
    try:
        run.expanded = expand(site.sql, QueryContext(from_ts, to_ts, interval, dict(variables)))
        result = client.query(run.expanded)
    except (MacroError, ValueError) as exc:
        run.problems.append(f"cannot expand: {exc}")
        return run
    except ClickHouseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        run.problems.append(f"ClickHouse rejected the query: {first[:400]}")
        return run
    rows = [tuple(r) for r in result.result_rows]
    run.columns = tuple(result.column_names)
    run.types = tuple(t.name for t in result.column_types)
    run.rows = len(rows)
    if require_rows and not rows and not site.empty_when_healthy:
        run.problems.append("no rows")
    if site.kind == "timeseries" and rows:
        run.problems.extend(_frame_problems(run, rows))
    if site.kind == "variable" and rows and run.columns[:2] != ("value", "text"):
        run.problems.append(f"a variable query answers (value, text), got {run.columns}")
    return run


def check_sql(
    client: Client,
    models: list[Mapping[str, Any]],
    from_ts: datetime,
    to_ts: datetime,
    require_rows: bool = True,
    healthy_empty: AbstractSet[tuple[str, str]] = frozenset(),
) -> list[SqlRun]:
    """One :class:`SqlRun` per ClickHouse query of ``models``, in dashboard order; the panels
    in ``healthy_empty`` (dashboard uid, title) need no rows (see :func:`query_sites`)."""
    runs = []
    for model in models:
        defaults = variable_defaults(model)
        for site in query_sites(model, healthy_empty):
            runs.append(run_site(client, site, from_ts, to_ts, defaults, require_rows))
    return runs
