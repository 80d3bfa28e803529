"""What a Lodestar dashboard shows, as plain data: the one description both the Grafana
generator (:mod:`lodestar.grafana.build`) and ``lodestar report`` render.

A ClickHouse panel names a history query (``infra/clickhouse/queries/<query>.sql``) and says
how to read its rows: one time column, label columns (one series per distinct label set) and
value columns (one line each). Grafana gets the query's SQL through
``lodestar_history.queries.grafana_sql`` with those columns selected; the report asks the
history service for the same named query and plots the same columns. A Prometheus panel
carries PromQL instead (the services' own ``/metrics``); the report cannot draw it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

PanelKind = Literal["timeseries", "bars", "table"]
VariableKind = Literal["query", "custom", "constant"]

#: Grafana's grid is 24 columns wide.
GRID_COLUMNS = 24


@dataclass(frozen=True)
class PromTarget:
    """One PromQL expression of a Prometheus panel, drawn with ``legend`` (Grafana legend format)."""

    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    """One panel. ``key`` is a stable slug (report file names, test ids); ``width``/``height`` are
    grid units (24 columns per row). The query's non-time parameters come from the dashboard
    variables of the same names.

    ``empty_when_healthy``: the query only has rows when something went wrong (dead letters,
    say), so no rows is the healthy state. ``lodestar grafana validate --dsn`` still runs the
    query but does not require rows from it. It changes nothing in the Grafana JSON."""

    key: str
    title: str
    description: str
    kind: PanelKind
    query: str | None = None
    time_column: str = "t"
    labels: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    #: display name per value column (legend "<labels> <name>"), default: the column name
    value_names: tuple[tuple[str, str], ...] = ()
    unit: str = "short"
    width: int = 12
    height: int = 8
    stacked: bool = False
    promql: tuple[PromTarget, ...] = ()
    empty_when_healthy: bool = False

    @property
    def datasource(self) -> Literal["clickhouse", "prometheus"]:
        return "prometheus" if self.promql else "clickhouse"

    def value_name(self, column: str) -> str:
        return dict(self.value_names).get(column, column)


@dataclass(frozen=True)
class VariableSpec:
    """A dashboard variable. ``query`` variables list values with ClickHouse SQL (first column
    the value, second the text; the first row is ``''``/"All", which the history queries read
    as "no filter"); ``custom`` ones offer ``options``; ``constant`` ones are hidden."""

    name: str
    label: str
    kind: VariableKind
    default: str
    description: str = ""
    sql: str = ""
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class DashboardSpec:
    uid: str
    title: str
    description: str
    panels: tuple[PanelSpec, ...]
    variables: tuple[VariableSpec, ...] = ()
    tags: tuple[str, ...] = ("lodestar",)
    time_from: str = "now-1h"
    refresh: str = "30s"

    def variable(self, name: str) -> VariableSpec | None:
        return next((v for v in self.variables if v.name == name), None)


def healthy_empty_panels(specs: Iterable[DashboardSpec]) -> frozenset[tuple[str, str]]:
    """(dashboard uid, panel title) of every panel marked ``empty_when_healthy``: how the SQL
    check (:mod:`lodestar.grafana.sqlcheck`) finds them in the generated JSON, which keeps no
    trace of the flag. Titles are the raw ones (``${var}`` unexpanded), unique per dashboard."""
    return frozenset((d.uid, p.title) for d in specs for p in d.panels if p.empty_when_healthy)
