"""One PNG per dashboard panel with matplotlib, from the rows of the panel's named query.

Series are built the way the Grafana panel builds them: one per distinct set of label values
and value column, named "<labels> <value name>"; "bars" panels stack their series per time
bucket; tables show the first rows. Pure but for writing the PNG.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lodestar.grafana.spec import PanelSpec

TABLE_ROWS = 20
_CELL_CHARS = 40


@dataclass(frozen=True)
class Series:
    name: str
    times: tuple[datetime, ...]
    values: tuple[float, ...]


def as_time(value: Any) -> datetime:
    """A UTC datetime from a datetime or ISO text (the history API's JSON form)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def series_of(panel: PanelSpec, rows: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> list[Series]:
    """The panel's series; ``names`` maps value columns to their (resolved) display names."""
    points: dict[str, list[tuple[datetime, float]]] = {}
    for row in rows:
        labels = " ".join("" if row.get(label) is None else str(row.get(label)) for label in panel.labels)
        t = as_time(row[panel.time_column])
        for column in panel.values:
            points.setdefault(f"{labels} {names[column]}".strip(), []).append((t, _number(row.get(column))))
    out = []
    for name, pts in points.items():
        pts.sort(key=lambda p: p[0])
        out.append(Series(name, tuple(p[0] for p in pts), tuple(p[1] for p in pts)))
    return out


def has_values(series: Sequence[Series]) -> bool:
    return any(not math.isnan(v) for s in series for v in s.values)


def _figure(title: str, size: tuple[float, float] = (8.0, 4.2)) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=size, dpi=100)
    ax.set_title(title, fontsize=11, loc="left")
    return fig, ax


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_series(
    title: str, panel: PanelSpec, series: Sequence[Series], unit_label: str, bucket_s: float, path: Path
) -> None:
    import matplotlib.dates as mdates
    import numpy as np

    fig, ax = _figure(title)
    if panel.kind == "bars":
        times = sorted({t for s in series for t in s.times})
        bottom = np.zeros(len(times))
        width = bucket_s / 86400.0 * 0.8
        for s in series:
            by_time = dict(zip(s.times, s.values, strict=True))
            heights = np.array([0.0 if math.isnan(by_time.get(t, math.nan)) else by_time[t] for t in times])
            ax.bar(times, heights, width=width, bottom=bottom, label=s.name, align="edge")
            bottom = bottom + heights
    elif panel.stacked:
        times = sorted({t for s in series for t in s.times})
        stacks = []
        for s in series:
            by_time = dict(zip(s.times, s.values, strict=True))
            stacks.append([0.0 if math.isnan(by_time.get(t, math.nan)) else by_time[t] for t in times])
        ax.stackplot(times, np.array(stacks), labels=[s.name for s in series])
    else:
        for s in series:
            ax.plot(s.times, s.values, marker="o", markersize=3, linewidth=1.4, label=s.name)
    locator = mdates.AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(unit_label)
    ax.grid(True, alpha=0.3)
    if len(series) <= 12:
        ax.legend(fontsize=8, loc="best")
    _save(fig, path)


def plot_table(title: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]], path: Path) -> None:
    shown = rows[:TABLE_ROWS]
    fig, ax = _figure(title, (14.0, 0.9 + 0.32 * (len(shown) + 1)))
    ax.axis("off")
    cells = [[_cell(row.get(c)) for c in columns] for row in shown]
    table = ax.table(cellText=cells or [["" for _ in columns]], colLabels=list(columns), loc="upper center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.auto_set_column_width(list(range(len(columns))))
    table.scale(1.0, 1.3)
    if len(rows) > len(shown):
        ax.set_xlabel(f"… {len(rows) - len(shown)} more row(s)")
    _save(fig, path)


def _cell(value: Any) -> str:
    if value is None:
        return "∅"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    text = str(value)
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"
