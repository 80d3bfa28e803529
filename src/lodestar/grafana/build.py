"""Dashboard specs → Grafana dashboard JSON, through grafana-foundation-sdk's builders.

Panels flow left to right in spec order and wrap at 24 columns, each at an explicit
``gridPos``; ids count from 1 in that order. ClickHouse targets carry :func:`panel_sql`;
variables become ClickHouse query variables (SQL string), custom or constant variables.
"""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from lodestar.grafana.clickhouse_query import ClickHouseQueryBuilder
from lodestar.grafana.datasources import CLICKHOUSE_TYPE, CLICKHOUSE_UID, PROMETHEUS_TYPE, PROMETHEUS_UID
from lodestar.grafana.spec import GRID_COLUMNS, DashboardSpec, PanelSpec, VariableSpec
from lodestar.grafana.sql import panel_sql
from lodestar_history.queries import QueryCatalog

_CLICKHOUSE = dm.DataSourceRef(type_val=CLICKHOUSE_TYPE, uid=CLICKHOUSE_UID)
_PROMETHEUS = dm.DataSourceRef(type_val=PROMETHEUS_TYPE, uid=PROMETHEUS_UID)


def layout(panels: tuple[PanelSpec, ...]) -> list[tuple[int, int]]:
    """(x, y) of each panel: left to right, a new row when the next one does not fit."""
    out: list[tuple[int, int]] = []
    x = y = row_h = 0
    for panel in panels:
        if x + panel.width > GRID_COLUMNS:
            x, y, row_h = 0, y + row_h, 0
        out.append((x, y))
        x += panel.width
        row_h = max(row_h, panel.height)
    return out


def display_name(panel: PanelSpec) -> str:
    """Legend text of a series: its label values, then its field name (the value's display
    name, which :func:`panel_sql` gives the column)."""
    return " ".join([*(f"${{__field.labels.{label}}}" for label in panel.labels), "${__field.name}"])


def _legend() -> cb.VizLegendOptions:
    return (
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.TABLE)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["mean", "max", "lastNotNull"])
    )


def _tooltip() -> cb.VizTooltipOptions:
    return cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)


def _timeseries(panel: PanelSpec, catalog: QueryCatalog) -> timeseries.Panel:
    builder = (
        timeseries.Panel()
        .legend(_legend())
        .tooltip(_tooltip())
        .unit(panel.unit)
        .span_nulls(False)
        .draw_style(cm.GraphDrawStyle.BARS if panel.kind == "bars" else cm.GraphDrawStyle.LINE)
        .fill_opacity(80 if panel.kind == "bars" or panel.stacked else 10)
    )
    if panel.stacked or panel.kind == "bars":
        builder = builder.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    if panel.promql:
        builder = builder.datasource(_PROMETHEUS)
        for i, target in enumerate(panel.promql):
            builder = builder.with_target(
                prometheus.Dataquery()
                .datasource(_PROMETHEUS)
                .ref_id(chr(ord("A") + i))
                .expr(target.expr)
                .legend_format(target.legend)
                .range()
            )
        return builder
    return (
        builder.datasource(_CLICKHOUSE)
        .display_name(display_name(panel))
        .with_target(ClickHouseQueryBuilder().ref_id("A").format("timeseries").raw_sql(panel_sql(panel, catalog)))
    )


def _table(panel: PanelSpec, catalog: QueryCatalog) -> table.Panel:
    return (
        table.Panel()
        .datasource(_CLICKHOUSE)
        .show_header(True)
        .cell_height(cm.TableCellHeight.SM)
        .with_target(ClickHouseQueryBuilder().ref_id("A").format("table").raw_sql(panel_sql(panel, catalog)))
    )


def _panel(panel: PanelSpec, panel_id: int, x: int, y: int, catalog: QueryCatalog) -> db.Panel:
    builder: Any = _table(panel, catalog) if panel.kind == "table" else _timeseries(panel, catalog)
    built: db.Panel = (
        builder.id(panel_id)
        .title(panel.title)
        .description(panel.description)
        .grid_pos(dm.GridPos(h=panel.height, w=panel.width, x=x, y=y))
    )
    return built


def _variable(spec: VariableSpec) -> Any:
    current = dm.VariableOption(text="All" if spec.default == "" else spec.default, value=spec.default)
    if spec.kind == "query":
        return (
            db.QueryVariable(spec.name)
            .label(spec.label)
            .description(spec.description)
            .datasource(_CLICKHOUSE)
            .query(spec.sql)
            .current(current)
            .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dm.VariableSort.DISABLED)
            .include_all(False)
            .multi(False)
        )
    if spec.kind == "custom":
        options = [dm.VariableOption(text=o, value=o, selected=o == spec.default) for o in spec.options]
        return (
            db.CustomVariable(spec.name)
            .label(spec.label)
            .description(spec.description)
            .values(",".join(spec.options))
            .options(options)
            .current(current)
            .multi(False)
            .include_all(False)
        )
    return db.ConstantVariable(spec.name).label(spec.label).description(spec.description).value(spec.default)


def build_dashboard(spec: DashboardSpec, catalog: QueryCatalog) -> dict[str, Any]:
    """The Grafana JSON model of ``spec`` (a plain dict, keys as Grafana writes them)."""
    builder = (
        db.Dashboard(spec.title)
        .uid(spec.uid)
        .description(spec.description)
        .tags(list(spec.tags))
        .time(spec.time_from, "now")
        .refresh(spec.refresh)
        .timezone("utc")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .readonly()
    )
    for variable in spec.variables:
        builder = builder.with_variable(_variable(variable))
    for panel_id, (panel, (x, y)) in enumerate(zip(spec.panels, layout(spec.panels), strict=True), start=1):
        builder = builder.with_panel(_panel(panel, panel_id, x, y, catalog))
    model: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    return model


def dashboard_text(model: dict[str, Any]) -> str:
    """The committed form of a dashboard: sorted keys, two-space indent, trailing newline."""
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
