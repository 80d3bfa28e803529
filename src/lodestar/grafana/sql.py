"""Panel SQL from the named history queries: one source of truth for Grafana and the report.

``panel_sql`` takes the query file's text through ``lodestar_history.queries.grafana_sql``
(range and bucket parameters → the ClickHouse data source's macros, the others → dashboard
variables) and, for a time-series panel, selects the panel's columns around it: the time
column, the label columns as strings (the data source turns every string column into a series
label when it converts the rows to wide time series) and the value columns renamed to their
display names (the legend shows the labels and that name), ordered by time (the conversion
needs ascending time).
"""

from __future__ import annotations

from pathlib import Path

from lodestar.grafana.spec import PanelSpec
from lodestar_history.queries import QueryCatalog, grafana_sql
from lodestar_history.settings import default_sql_dir


def load_catalog(sql_dir: Path | None = None) -> QueryCatalog:
    """The named queries in ``<sql_dir>/queries`` (default: this source tree's infra/clickhouse)."""
    return QueryCatalog.load((sql_dir or default_sql_dir()) / "queries")


def panel_sql(panel: PanelSpec, catalog: QueryCatalog) -> str:
    """The rawSql of ``panel``'s ClickHouse target; ValueError for a Prometheus panel."""
    if panel.query is None:
        raise ValueError(f"panel {panel.key!r} has no ClickHouse query")
    base = grafana_sql(catalog.get(panel.query)).strip()
    if panel.kind == "table":
        return base
    columns = [
        panel.time_column,
        *(f"ifNull(toString({label}), '') AS {label}" for label in panel.labels),
        *(f"{value} AS {quote_identifier(panel.value_name(value))}" for value in panel.values),
    ]
    select = ",\n    ".join(columns)
    return f"SELECT\n    {select}\nFROM\n(\n{base}\n)\nORDER BY {panel.time_column}"


def quote_identifier(name: str) -> str:
    """``name`` as a ClickHouse double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
