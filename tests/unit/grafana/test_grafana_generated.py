"""The committed files under infra/grafana are what the generator writes, and they pass the
static validator; the panel SQL is the named queries' SQL through grafana_sql()."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from lodestar.grafana.build import build_dashboard
from lodestar.grafana.dashboards import DASHBOARDS, PIPELINE
from lodestar.grafana.datasources import CLICKHOUSE_UID, PROMETHEUS_UID, PROVISIONED
from lodestar.grafana.generate import default_grafana_dir, drift, render, write
from lodestar.grafana.spec import DashboardSpec, PanelSpec, healthy_empty_panels
from lodestar.grafana.sql import load_catalog, panel_sql
from lodestar.grafana.validate import validate_dashboard
from lodestar_history.queries import grafana_sql

GRAFANA_DIR = default_grafana_dir()
CATALOG = load_catalog()
COMMITTED = {p.stem: json.loads(p.read_text()) for p in sorted((GRAFANA_DIR / "dashboards").glob("*.json"))}


def test_committed_files_match_the_generator() -> None:
    problems = drift(GRAFANA_DIR, render(CATALOG))
    assert problems == [], "run `lodestar grafana generate`:\n" + "\n".join(problems)


def test_drift_is_reported_for_edited_missing_and_extra_files(tmp_path: Path) -> None:
    files = render(CATALOG)
    write(tmp_path, files)
    assert drift(tmp_path, files) == []
    edited = tmp_path / "dashboards" / "lodestar-routing.json"
    edited.write_text(edited.read_text().replace("TTFT p50 / p99 by policy", "TTFT by policy"))
    (tmp_path / "provisioning" / "dashboards" / "lodestar.yaml").unlink()
    (tmp_path / "dashboards" / "stray.json").write_text("{}")
    problems = drift(tmp_path, files)
    assert any(p.startswith("dashboards/lodestar-routing.json: differs") and "TTFT by policy" in p for p in problems)
    assert "provisioning/dashboards/lodestar.yaml: missing" in problems
    assert "dashboards/stray.json: no dashboard spec makes this file" in problems
    write(tmp_path, files)  # a rewrite removes the stray dashboard
    assert drift(tmp_path, files) == []


@pytest.mark.parametrize("uid", sorted(COMMITTED))
def test_committed_dashboard_passes_the_validator(uid: str) -> None:
    assert validate_dashboard(COMMITTED[uid], PROVISIONED) == []


def test_every_dashboard_spec_is_committed_once() -> None:
    assert sorted(COMMITTED) == sorted(d.uid for d in DASHBOARDS)


CLICKHOUSE_PANELS = [(d, p) for d in DASHBOARDS for p in d.panels if p.query]


@pytest.mark.parametrize(
    ("dashboard", "panel"), CLICKHOUSE_PANELS, ids=[f"{d.uid}-{p.key}" for d, p in CLICKHOUSE_PANELS]
)
def test_panel_sql_is_the_named_query_through_grafana_sql(dashboard: DashboardSpec, panel: PanelSpec) -> None:
    assert panel.query is not None
    committed = COMMITTED[dashboard.uid]
    target = next(p for p in committed["panels"] if p["title"] == panel.title)["targets"][0]
    assert target["rawSql"] == panel_sql(panel, CATALOG)
    assert grafana_sql(CATALOG.get(panel.query)).strip() in target["rawSql"]
    assert target["datasource"] == {"type": "grafana-clickhouse-datasource", "uid": CLICKHOUSE_UID}


def test_every_non_time_parameter_is_a_dashboard_variable() -> None:
    for dashboard in DASHBOARDS:
        names = {v.name for v in dashboard.variables}
        for panel in dashboard.panels:
            if panel.query:
                params = {p.name for p in CATALOG.get(panel.query).params} - {"from_ts", "to_ts", "bucket_s"}
                assert params <= names, f"{dashboard.uid}/{panel.key}: {params - names}"


def test_the_dashboards_cover_what_issue_8_asks_for() -> None:
    queries = {p.query for d in DASHBOARDS for p in d.panels}
    assert {
        "ttft_by_policy",
        "ttft_by_instance",
        "instance_traffic",
        "instance_load",
        "prefix_hit_rate",
        "model_versions",
        "prediction_error",
        "exploration",
        "dead_letters",
    } <= queries
    promql = [t.expr for d in DASHBOARDS for p in d.panels for t in p.promql]
    assert any("events_dropped_total" in e for e in promql)
    variables = {v.name for d in DASHBOARDS for v in d.variables}
    assert {"policy", "instance_id"} <= variables


def test_the_dead_letter_panels_are_the_ones_healthy_when_empty() -> None:
    """No dead letter is the healthy state; every other panel has rows whenever there is traffic
    (error, fallback and gap panels answer zeros per bucket, not nothing)."""
    flagged = {(d.uid, p.key) for d in DASHBOARDS for p in d.panels if p.empty_when_healthy}
    assert flagged == {("lodestar-pipeline", "dead_letters"), ("lodestar-pipeline", "dead_letter_list")}
    assert healthy_empty_panels(DASHBOARDS) == {
        ("lodestar-pipeline", "Dead letters per source topic"),
        ("lodestar-pipeline", "Newest dead letters"),
    }


@pytest.mark.parametrize("dashboard", DASHBOARDS, ids=[d.uid for d in DASHBOARDS])
def test_panel_titles_are_unique_per_dashboard(dashboard: DashboardSpec) -> None:
    """The SQL check finds the healthy-when-empty panels in the JSON by (uid, title)."""
    titles = [p.title for p in dashboard.panels]
    assert len(set(titles)) == len(titles)


def test_the_healthy_empty_flag_leaves_the_grafana_json_unchanged() -> None:
    unflagged = dataclasses.replace(
        PIPELINE, panels=tuple(dataclasses.replace(p, empty_when_healthy=False) for p in PIPELINE.panels)
    )
    assert unflagged != PIPELINE
    assert build_dashboard(unflagged, CATALOG) == build_dashboard(PIPELINE, CATALOG)


def test_provisioning_names_the_data_sources_the_dashboards_use() -> None:
    document = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "lodestar.yaml").read_text())
    by_uid = {d["uid"]: d for d in document["datasources"]}
    assert {uid: d["type"] for uid, d in by_uid.items()} == PROVISIONED
    clickhouse = by_uid[CLICKHOUSE_UID]
    assert clickhouse["jsonData"]["host"] == "clickhouse"
    assert clickhouse["jsonData"]["port"] == 8123
    assert clickhouse["jsonData"]["protocol"] == "http"
    assert clickhouse["jsonData"]["username"] == "${CLICKHOUSE_USER}"
    assert clickhouse["secureJsonData"]["password"] == "${CLICKHOUSE_PASSWORD}"
    assert by_uid[PROMETHEUS_UID]["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "lodestar.yaml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/lodestar"
