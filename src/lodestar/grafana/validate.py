"""Static checks of dashboard JSON, since no Grafana server can load it here.

:func:`validate_dashboard` returns one message per problem (empty: fine):

- the model survives grafana-foundation-sdk's types: ``Dashboard.from_json`` then ``to_json``
  gives the same JSON (a misspelt or mistyped key is dropped or changed on the way);
- uid/title present; panel ids unique positive integers; ``gridPos`` four integers (not
  strings, not booleans), inside the 24-column grid, no two panels overlapping;
- every panel has ``options`` and ``fieldConfig`` objects and at least one target, refIds
  unique; every data source (panel, target, variable) is a provisioned uid with its type;
- ClickHouse targets: SQL editor, non-empty ``rawSql``, format 0 (time series) in time-series
  panels and 1 in tables, and the SQL's macros are ones the plugin expands;
  Prometheus targets: a non-empty ``expr``;
- variables: unique identifier names, a current value (a custom one among its options), query
  variables with SQL; every ``$var`` / ``${var}`` / ``[[var]]`` in SQL, PromQL, titles,
  descriptions, legends and display names is a defined variable, and every variable is used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as dm

from lodestar.grafana.datasources import CLICKHOUSE_TYPE, PROMETHEUS_TYPE
from lodestar.grafana.macros import MacroError, QueryContext, expand_macros, variable_names
from lodestar.grafana.spec import GRID_COLUMNS

_UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PANEL_TYPES = frozenset({"timeseries", "table", "stat", "barchart", "bargauge", "gauge", "text", "piechart"})
VARIABLE_TYPES = frozenset({"query", "custom", "constant", "textbox", "interval", "datasource"})


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def round_trip_problems(model: Mapping[str, Any]) -> list[str]:
    """Differences after decoding ``model`` with the SDK's types and encoding it again."""
    register_default_plugins()  # the SDK's own decoder registry (idempotent)
    try:
        decoded = dm.Dashboard.from_json(dict(model))
        again = json.loads(json.dumps(decoded, cls=JSONEncoder))
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        return [f"grafana-foundation-sdk cannot decode the dashboard: {type(exc).__name__}: {exc}"]
    return [f"{path}: {detail}" for path, detail in _diff(model, again, "dashboard")]


def _diff(a: object, b: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            if key not in b:
                yield f"{path}.{key}", "dropped by the SDK's types (unknown key?)"
            elif key not in a:
                continue  # a default the SDK adds is not a problem of the model
            else:
                yield from _diff(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield path, f"{len(a)} item(s) became {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            yield from _diff(x, y, f"{path}[{i}]")
    elif a != b or type(a) is not type(b):
        yield path, f"{a!r} became {b!r} (wrong type?)"


def _grid_problems(panels: list[dict[str, Any]]) -> list[str]:
    problems: list[str] = []
    boxes: list[tuple[str, int, int, int, int]] = []
    for panel in panels:
        where = f"panel {panel.get('id')!r} ({panel.get('title')!r})"
        pos = panel.get("gridPos")
        if not isinstance(pos, dict) or not all(_is_int(pos.get(k)) for k in ("h", "w", "x", "y")):
            problems.append(f"{where}: gridPos needs integer h, w, x, y, got {pos!r}")
            continue
        h, w, x, y = pos["h"], pos["w"], pos["x"], pos["y"]
        if not (1 <= w <= GRID_COLUMNS and h >= 1 and x >= 0 and y >= 0 and x + w <= GRID_COLUMNS):
            problems.append(f"{where}: gridPos {pos} is outside the {GRID_COLUMNS}-column grid")
            continue
        boxes.append((where, x, y, w, h))
    for i, (wa, xa, ya, wda, ha) in enumerate(boxes):
        for wb, xb, yb, wdb, hb in boxes[i + 1 :]:
            if xa < xb + wdb and xb < xa + wda and ya < yb + hb and yb < ya + ha:
                problems.append(f"{wa} overlaps {wb}")
    return problems


def _datasource_problem(ds: object, provisioned: Mapping[str, str], where: str) -> str | None:
    if not isinstance(ds, dict) or not isinstance(ds.get("uid"), str):
        return f"{where}: no data source uid ({ds!r})"
    uid = ds["uid"]
    if uid not in provisioned:
        return f"{where}: data source uid {uid!r} is not provisioned ({sorted(provisioned)})"
    if ds.get("type") != provisioned[uid]:
        return f"{where}: data source {uid!r} has type {ds.get('type')!r}, provisioned as {provisioned[uid]!r}"
    return None


def _sample_context() -> QueryContext:
    to_ts = datetime(2026, 1, 1, tzinfo=UTC)
    return QueryContext(from_ts=to_ts - timedelta(hours=1), to_ts=to_ts, interval_ms=60_000)


def _target_problems(panel: dict[str, Any], provisioned: Mapping[str, str], where: str) -> list[str]:
    problems: list[str] = []
    targets = panel.get("targets")
    if not isinstance(targets, list) or not targets:
        return [f"{where}: no query (targets is empty)"]
    ref_ids = [t.get("refId") if isinstance(t, dict) else None for t in targets]
    if len(set(ref_ids)) != len(ref_ids) or not all(isinstance(r, str) and r for r in ref_ids):
        problems.append(f"{where}: refIds must be unique non-empty strings, got {ref_ids}")
    for target in targets:
        if not isinstance(target, dict):
            problems.append(f"{where}: a target is not an object")
            continue
        tw = f"{where} target {target.get('refId')!r}"
        ds = target.get("datasource", panel.get("datasource"))
        problem = _datasource_problem(ds, provisioned, tw)
        if problem or not isinstance(ds, dict):
            problems.append(problem or f"{tw}: no data source")
            continue
        kind = provisioned[ds["uid"]]
        if kind == CLICKHOUSE_TYPE:
            problems.extend(_clickhouse_target_problems(panel, target, tw))
        elif kind == PROMETHEUS_TYPE and not (isinstance(target.get("expr"), str) and target["expr"].strip()):
            problems.append(f"{tw}: Prometheus target without expr")
    return problems


def _clickhouse_target_problems(panel: dict[str, Any], target: dict[str, Any], where: str) -> list[str]:
    problems = []
    sql = target.get("rawSql")
    if not isinstance(sql, str) or not sql.strip():
        return [f"{where}: empty rawSql"]
    if target.get("editorType") != "sql":
        problems.append(f"{where}: editorType must be 'sql', got {target.get('editorType')!r}")
    expected = 1 if panel.get("type") == "table" else 0
    if target.get("format") != expected:
        problems.append(f"{where}: format must be {expected} in a {panel.get('type')} panel")
    try:
        expand_macros(sql, _sample_context())
    except MacroError as exc:
        problems.append(f"{where}: {exc}")
    return problems


def _variable_problems(model: Mapping[str, Any], provisioned: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
    problems: list[str] = []
    texts: dict[str, str] = {}
    templating = model.get("templating")
    variables = templating.get("list") if isinstance(templating, dict) else None
    if not isinstance(variables, list):
        return ["templating.list is missing"], texts
    names = [v.get("name") for v in variables if isinstance(v, dict)]
    if len(names) != len(variables) or len(set(names)) != len(names):
        problems.append(f"variable names must be unique, got {names}")
    for var in variables:
        name = var.get("name")
        where = f"variable {name!r}"
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(f"{where}: name must be an identifier")
            continue
        if var.get("type") not in VARIABLE_TYPES:
            problems.append(f"{where}: unknown type {var.get('type')!r}")
        current = var.get("current")
        if var.get("type") != "constant" and not (isinstance(current, dict) and "value" in current):
            problems.append(f"{where}: no current value")
        if var.get("type") == "query":
            problem = _datasource_problem(var.get("datasource"), provisioned, where)
            if problem:
                problems.append(problem)
            query = var.get("query")
            sql = query if isinstance(query, str) else query.get("rawSql") if isinstance(query, dict) else None
            if not isinstance(sql, str) or not sql.strip():
                problems.append(f"{where}: query variable without SQL")
            else:
                texts[where] = sql
                try:
                    expand_macros(sql, _sample_context())
                except MacroError as exc:
                    problems.append(f"{where}: {exc}")
        if var.get("type") == "custom":
            values = [o.get("value") for o in var.get("options") or [] if isinstance(o, dict)]
            if not values:
                problems.append(f"{where}: custom variable without options")
            elif isinstance(current, dict) and current.get("value") not in values:
                problems.append(f"{where}: current value {current.get('value')!r} is not among {values}")
    return problems, texts


def _panel_texts(panel: dict[str, Any], where: str) -> dict[str, str]:
    texts = {f"{where} title": str(panel.get("title", "")), f"{where} description": str(panel.get("description", ""))}
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    if isinstance(defaults, dict) and "displayName" in defaults:
        texts[f"{where} displayName"] = str(defaults["displayName"])
    for target in panel.get("targets") or []:
        if isinstance(target, dict):
            for key in ("rawSql", "expr", "legendFormat"):
                if isinstance(target.get(key), str):
                    texts[f"{where} target {target.get('refId')!r} {key}"] = target[key]
    return texts


def validate_dashboard(model: Mapping[str, Any], provisioned: Mapping[str, str]) -> list[str]:
    """Every problem of one dashboard's JSON model; ``provisioned`` maps data source uid → type."""
    problems: list[str] = []
    if not isinstance(model.get("uid"), str) or not _UID.match(model["uid"]):
        problems.append(f"uid must be 1-40 characters of [A-Za-z0-9_-], got {model.get('uid')!r}")
    if not isinstance(model.get("title"), str) or not model["title"].strip():
        problems.append("title is missing")
    panels = model.get("panels")
    if not isinstance(panels, list) or not panels or not all(isinstance(p, dict) for p in panels):
        return [*problems, "panels must be a non-empty list of objects"]
    ids = [p.get("id") for p in panels]
    if not all(_is_int(i) and i > 0 for i in ids) or len(set(ids)) != len(ids):
        problems.append(f"panel ids must be unique positive integers, got {ids}")
    problems.extend(_grid_problems(panels))
    texts: dict[str, str] = {}
    for panel in panels:
        where = f"panel {panel.get('id')!r} ({panel.get('title')!r})"
        if panel.get("type") not in PANEL_TYPES:
            problems.append(f"{where}: unknown panel type {panel.get('type')!r}")
        if not isinstance(panel.get("options"), dict):
            problems.append(f"{where}: options must be an object (Grafana and the SDK fail on null)")
        field_config = panel.get("fieldConfig")
        if not (isinstance(field_config, dict) and isinstance(field_config.get("defaults"), dict)):
            problems.append(f"{where}: fieldConfig.defaults must be an object")
        if panel.get("datasource") is not None:
            problem = _datasource_problem(panel["datasource"], provisioned, where)
            if problem:
                problems.append(problem)
        problems.extend(_target_problems(panel, provisioned, where))
        texts.update(_panel_texts(panel, where))
    variable_problems, variable_texts = _variable_problems(model, provisioned)
    problems.extend(variable_problems)
    texts.update(variable_texts)
    defined = {v.get("name") for v in (model.get("templating") or {}).get("list") or [] if isinstance(v, dict)}
    used: set[str] = set()
    for where, text in texts.items():
        names = variable_names(text)
        used |= names
        for name in sorted(names - defined):
            problems.append(f"{where}: uses ${{{name}}}, which is not a dashboard variable")
    for name in sorted(n for n in defined - used if isinstance(n, str)):
        problems.append(f"variable {name!r} is defined but never used")
    problems.extend(round_trip_problems(model))
    return problems
