"""The static validator rejects each kind of broken dashboard with a message naming it
(table-driven: a mutation of a committed dashboard → the expected message)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from lodestar.grafana.datasources import PROVISIONED
from lodestar.grafana.generate import default_grafana_dir
from lodestar.grafana.validate import validate_dashboard

BASE: dict[str, Any] = json.loads((default_grafana_dir() / "dashboards" / "lodestar-routing.json").read_text())
Mutation = Callable[[dict[str, Any]], None]


def _panel(m: dict[str, Any], i: int = 0) -> dict[str, Any]:
    panel: dict[str, Any] = m["panels"][i]
    return panel


def _var(m: dict[str, Any], name: str) -> dict[str, Any]:
    var: dict[str, Any] = next(v for v in m["templating"]["list"] if v["name"] == name)
    return var


def _set(path: list[Any], value: Any) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        node: Any = m
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return mutate


def _delete(path: list[Any]) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        node: Any = m
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def _sql(i: int, old: str, new: str) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        target = _panel(m, i)["targets"][0]
        assert old in target["rawSql"]
        target["rawSql"] = target["rawSql"].replace(old, new)

    return mutate


def _append_sql(i: int, text: str) -> Mutation:
    def mutate(m: dict[str, Any]) -> None:
        _panel(m, i)["targets"][0]["rawSql"] += text

    return mutate


CASES: list[tuple[str, Mutation, str]] = [
    ("duplicate panel id", _set(["panels", 1, "id"], 1), "panel ids must be unique positive integers"),
    ("id as string", _set(["panels", 1, "id"], "2"), "panel ids must be unique positive integers"),
    ("gridPos height is text", _set(["panels", 0, "gridPos", "h"], "x"), "gridPos needs integer h, w, x, y"),
    ("gridPos boolean", _set(["panels", 0, "gridPos", "w"], True), "gridPos needs integer h, w, x, y"),
    ("panel past column 24", _set(["panels", 1, "gridPos", "x"], 13), "outside the 24-column grid"),
    ("zero width", _set(["panels", 1, "gridPos", "w"], 0), "outside the 24-column grid"),
    ("overlapping panels", _set(["panels", 1, "gridPos", "x"], 6), "overlaps"),
    ("no targets", _set(["panels", 0, "targets"], []), "no query (targets is empty)"),
    ("empty SQL", _set(["panels", 0, "targets", 0, "rawSql"], " "), "empty rawSql"),
    ("unprovisioned uid", _set(["panels", 0, "datasource", "uid"], "other"), "is not provisioned"),
    (
        "type mismatch",
        _set(["panels", 0, "targets", 0, "datasource", "type"], "prometheus"),
        "provisioned as 'grafana-clickhouse-datasource'",
    ),
    ("table format in a time series", _set(["panels", 0, "targets", 0, "format"], 1), "format must be 0"),
    ("builder editor", _set(["panels", 0, "targets", 0, "editorType"], "builder"), "editorType must be 'sql'"),
    ("unknown macro", _append_sql(0, " AND $__unknownMacro"), "unknown macro(s) $__unknownMacro"),
    ("unclosed macro bracket", _append_sql(0, " AND $__timeFilter(ts"), "missing close bracket"),
    ("macro argument count", _append_sql(0, " AND $__timeFilter(a, b)"), "expected 1 argument(s), received 2"),
    ("undefined ${var}", _sql(0, "'${policy}'", "'${polcy}'"), "uses ${polcy}, which is not a dashboard variable"),
    ("undefined $var", _append_sql(0, " AND $tenant = 1"), "uses ${tenant}"),
    ("undefined [[var]]", _append_sql(0, " AND [[zone]] = 1"), "uses ${zone}"),
    ("undefined var in title", _set(["panels", 0, "title"], "TTFT ${region}"), "title: uses ${region}"),
    ("unused variable", _sql(1, "'${instance_id}'", "''"), "variable 'instance_id' is defined but never used"),
    ("null options", _set(["panels", 0, "options"], None), "options must be an object"),
    ("unknown panel type", _set(["panels", 0, "type"], "graph2"), "unknown panel type 'graph2'"),
    ("unknown key", _set(["panels", 0, "gridpos"], {}), "dashboard.panels[0].gridpos: dropped by the SDK's types"),
    ("bad uid", _set(["uid"], "has spaces"), "uid must be 1-40 characters"),
    ("no title", _delete(["title"]), "title is missing"),
]


@pytest.mark.parametrize(("case", "mutate", "message"), CASES, ids=[c[0] for c in CASES])
def test_a_broken_dashboard_is_rejected_naming_the_problem(case: str, mutate: Mutation, message: str) -> None:
    model = copy.deepcopy(BASE)
    mutate(model)
    problems = validate_dashboard(model, PROVISIONED)
    assert any(message in p for p in problems), f"{case}: {problems}"


def test_variable_problems() -> None:
    model = copy.deepcopy(BASE)
    _var(model, "policy")["datasource"]["uid"] = "nope"
    _var(model, "instance_id")["query"] = ""
    model["templating"]["list"].append(copy.deepcopy(_var(model, "policy")))
    problems = validate_dashboard(model, PROVISIONED)
    assert any("variable 'policy': data source uid 'nope' is not provisioned" in p for p in problems)
    assert any("variable 'instance_id': query variable without SQL" in p for p in problems)
    assert any("variable names must be unique" in p for p in problems)


def test_custom_variable_current_value_must_be_an_option() -> None:
    model = json.loads((default_grafana_dir() / "dashboards" / "lodestar-learning.json").read_text())
    _var(model, "metric")["current"]["value"] = "not_a_metric"
    problems = validate_dashboard(model, PROVISIONED)
    assert any("current value 'not_a_metric' is not among" in p for p in problems)


def test_prometheus_target_needs_an_expression() -> None:
    model = json.loads((default_grafana_dir() / "dashboards" / "lodestar-pipeline.json").read_text())
    prom = next(p for p in model["panels"] if p["datasource"]["type"] == "prometheus")
    prom["targets"][0]["expr"] = ""
    assert any("Prometheus target without expr" in p for p in validate_dashboard(model, PROVISIONED))


def test_the_unmodified_dashboard_is_clean() -> None:
    assert validate_dashboard(copy.deepcopy(BASE), PROVISIONED) == []
