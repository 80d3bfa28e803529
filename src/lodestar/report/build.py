"""``lodestar report``: every dashboard panel as a PNG, plus ``index.html`` and ``index.md``.

Each ClickHouse panel's named query runs once for the window (``from_ts``/``to_ts``, the
bucket as ``bucket_s``, the other parameters from the dashboard variables' defaults or
``--var`` values); Prometheus panels are listed but not drawn (they need Prometheus).
A panel whose query has no rows in the window is listed as "no data"; when no panel has data
the report fails with :class:`NoDataError`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from lodestar.grafana.macros import grafana_interval_ms, interpolate
from lodestar.grafana.spec import DashboardSpec, PanelSpec
from lodestar.report.charts import has_values, plot_series, plot_table, series_of
from lodestar.report.source import HistorySource, ReportSourceError

UNIT_LABELS = {"s": "seconds", "percentunit": "fraction (0–1)", "reqps": "requests / s", "ops": "per second"}


class NoDataError(ReportSourceError):
    """No panel has data in the window."""


@dataclass(frozen=True)
class Window:
    from_ts: datetime
    to_ts: datetime
    bucket_s: int

    @classmethod
    def of(cls, from_ts: datetime, to_ts: datetime, bucket_s: int | None = None, points: int = 120) -> Window:
        """A window; the bucket defaults to Grafana's interval for ``points`` points (>= 1 s)."""
        if to_ts <= from_ts:
            raise ValueError(f"the window is empty: {from_ts.isoformat()} is not before {to_ts.isoformat()}")
        auto = max(grafana_interval_ms(from_ts, to_ts, points, None) // 1000, 1)
        return cls(from_ts, to_ts, bucket_s or auto)


@dataclass(frozen=True)
class PanelResult:
    dashboard: DashboardSpec
    panel: PanelSpec
    title: str
    status: Literal["ok", "empty", "skipped"]
    image: Path | None = None
    rows: int = 0
    note: str = ""


def variable_values(spec: DashboardSpec, overrides: Mapping[str, str]) -> dict[str, str]:
    return {**{v.name: v.default for v in spec.variables}, **overrides}


def _params(source: HistorySource, panel: PanelSpec, window: Window, values: Mapping[str, str]) -> dict[str, object]:
    assert panel.query is not None
    wanted = source.params_of(panel.query)
    params: dict[str, object] = {
        "from_ts": window.from_ts.isoformat(),
        "to_ts": window.to_ts.isoformat(),
        "bucket_s": window.bucket_s,
    }
    params.update({name: value for name, value in values.items() if name in wanted})
    return {k: v for k, v in params.items() if k in wanted}


def render_panel(
    source: HistorySource, spec: DashboardSpec, panel: PanelSpec, window: Window, values: Mapping[str, str], out: Path
) -> PanelResult:
    title = interpolate(panel.title, values)
    if panel.query is None:
        return PanelResult(spec, panel, title, "skipped", note="Prometheus panel: open it in Grafana")
    answer = source.run(panel.query, _params(source, panel, window, values))
    image = out / f"{spec.uid}__{panel.key}.png"
    if not answer.rows:
        return PanelResult(spec, panel, title, "empty", note="no data in the window")
    if panel.kind == "table":
        plot_table(title, answer.columns, answer.rows, image)
        return PanelResult(spec, panel, title, "ok", image, len(answer.rows))
    names = {column: interpolate(panel.value_name(column), values) for column in panel.values}
    series = series_of(panel, answer.rows, names)
    if not has_values(series):
        return PanelResult(spec, panel, title, "empty", rows=len(answer.rows), note="rows, but every value is empty")
    plot_series(title, panel, series, UNIT_LABELS.get(panel.unit, ""), window.bucket_s, image)
    return PanelResult(spec, panel, title, "ok", image, len(answer.rows))


def build_report(
    source: HistorySource,
    specs: tuple[DashboardSpec, ...],
    window: Window,
    overrides: Mapping[str, str],
    out: Path,
) -> list[PanelResult]:
    """Render every panel of ``specs`` into ``out`` and write the indexes; NoDataError if all empty."""
    out.mkdir(parents=True, exist_ok=True)
    results: list[PanelResult] = []
    for spec in specs:
        values = variable_values(spec, overrides)
        results.extend(render_panel(source, spec, panel, window, values, out) for panel in spec.panels)
    write_indexes(out, results, window, source.describe())
    if not any(r.status == "ok" for r in results):
        raise NoDataError(
            f"no data between {window.from_ts.isoformat()} and {window.to_ts.isoformat()} in {source.describe()}; "
            "widen the window (--from now-24h) or check that the history sink receives events"
        )
    return results


def write_indexes(out: Path, results: list[PanelResult], window: Window, source: str) -> tuple[Path, Path]:
    """``index.md`` and ``index.html`` listing every panel (image, or why there is none)."""
    head = (
        f"Window {window.from_ts:%Y-%m-%d %H:%M:%S} – {window.to_ts:%Y-%m-%d %H:%M:%S} UTC, "
        f"bucket {window.bucket_s} s, from {source}."
    )
    md = ["# Lodestar report", "", head, ""]
    body = [f"<h1>Lodestar report</h1><p>{html.escape(head)}</p>"]
    current = None
    for r in results:
        if r.dashboard.uid != current:
            current = r.dashboard.uid
            md += [f"## {r.dashboard.title}", "", r.dashboard.description, ""]
            body.append(f"<h2>{html.escape(r.dashboard.title)}</h2><p>{html.escape(r.dashboard.description)}</p>")
        md += [f"### {r.title}", "", r.panel.description, ""]
        body.append(f"<h3>{html.escape(r.title)}</h3><p>{html.escape(r.panel.description)}</p>")
        if r.image is not None:
            md += [f"![{r.title}]({r.image.name})", ""]
            body.append(f'<img src="{html.escape(r.image.name)}" alt="{html.escape(r.title)}">')
        else:
            md += [f"*{r.note}*", ""]
            body.append(f"<p><em>{html.escape(r.note)}</em></p>")
    md_path, html_path = out / "index.md", out / "index.html"
    md_path.write_text("\n".join(md), encoding="utf-8")
    style = "body{font-family:sans-serif;max-width:1200px;margin:auto}img{max-width:100%}"
    html_path.write_text(
        f'<!doctype html><html><head><meta charset="utf-8"><title>Lodestar report</title>'
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n",
        encoding="utf-8",
    )
    return md_path, html_path
