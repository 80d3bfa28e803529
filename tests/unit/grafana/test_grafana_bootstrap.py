"""``lodestar grafana bootstrap`` against a stand-in of Grafana's HTTP API.

No Grafana server can run on this machine (none is installable here), so these tests run
the real grafana-client calls against grafana_standin.GrafanaStandIn, a real HTTP server on
127.0.0.1 that keeps Grafana's state, answers as Grafana's legacy API does
(/api/datasources, /api/folders, /api/dashboards/db) and checks every request body against
the fields of Grafana's API commands. What only a real Grafana can tell — that the plugin
accepts these data source settings, that the dashboards render — is out of their reach.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from grafana_standin import GrafanaStandIn
from typer.testing import CliRunner

from lodestar.cli.app import build_app
from lodestar.grafana.bootstrap import BootstrapError, bootstrap, connect, plan
from lodestar.grafana.datasources import CLICKHOUSE_UID, PROMETHEUS_UID
from lodestar.grafana.generate import default_grafana_dir
from lodestar.grafana.settings import GrafanaSettings

TOKEN = "glsa_test_token"
MODELS = [json.loads(p.read_text()) for p in sorted((default_grafana_dir() / "dashboards").glob("*.json"))]


@pytest.fixture
def grafana() -> Iterator[GrafanaStandIn]:
    server = GrafanaStandIn(TOKEN)
    yield server
    server.stop()


def _settings(grafana: GrafanaStandIn, **extra: object) -> GrafanaSettings:
    values: dict[str, object] = {
        "url": grafana.url,
        "token": TOKEN,
        "clickhouse_host": "ch.internal",
        "clickhouse_password": "s3cret",
        "prometheus_url": "http://prom.internal:9090",
        **extra,
    }
    return GrafanaSettings.model_validate(values)


def test_first_bootstrap_creates_sources_folder_and_dashboards(grafana: GrafanaStandIn) -> None:
    settings = _settings(grafana)
    report = bootstrap(connect(settings), plan(settings, MODELS))

    calls = [(c.method, c.path, c.status) for c in grafana.state.calls]
    assert calls[:5] == [
        ("GET", f"/api/datasources/uid/{CLICKHOUSE_UID}", 404),
        ("POST", "/api/datasources", 200),
        ("GET", f"/api/datasources/uid/{PROMETHEUS_UID}", 404),
        ("POST", "/api/datasources", 200),
        ("GET", "/api/folders/lodestar", 404),
    ]
    assert calls[5] == ("POST", "/api/folders", 200)
    assert calls[6:] == [("POST", "/api/dashboards/db", 200)] * len(MODELS)
    assert all(c.authorization == f"Bearer {TOKEN}" for c in grafana.state.calls)

    clickhouse = grafana.state.datasources[CLICKHOUSE_UID]
    assert clickhouse["type"] == "grafana-clickhouse-datasource"
    assert clickhouse["jsonData"] == {
        "host": "ch.internal",
        "port": 8123,
        "protocol": "http",
        "secure": False,
        "username": "lodestar",
        "defaultDatabase": "lodestar",
    }
    assert clickhouse["secureJsonData"] == {"password": "s3cret"}
    assert grafana.state.datasources[PROMETHEUS_UID]["url"] == "http://prom.internal:9090"
    assert grafana.state.folders["lodestar"]["title"] == "Lodestar"
    for model in MODELS:
        stored = grafana.state.dashboards[model["uid"]]
        assert stored["folderUid"] == "lodestar"
        assert stored["dashboard"] == {**model, "id": None}
    assert report.created == [f"data source {CLICKHOUSE_UID}", f"data source {PROMETHEUS_UID}", "folder lodestar"]
    assert len(report.dashboards) == len(MODELS)


def test_second_bootstrap_updates_in_place(grafana: GrafanaStandIn) -> None:
    settings = _settings(grafana)
    bootstrap(connect(settings), plan(settings, MODELS))
    grafana.state.calls.clear()
    changed = _settings(grafana, clickhouse_host="ch2.internal")
    report = bootstrap(connect(changed), plan(changed, MODELS))

    methods = [(c.method, c.path) for c in grafana.state.calls]
    assert ("PUT", f"/api/datasources/uid/{CLICKHOUSE_UID}") in methods
    assert ("POST", "/api/datasources") not in methods
    assert ("POST", "/api/folders") not in methods
    assert grafana.state.datasources[CLICKHOUSE_UID]["jsonData"]["host"] == "ch2.internal"
    assert all(d["version"] == 2 for d in grafana.state.dashboards.values())
    assert report.updated == [f"data source {CLICKHOUSE_UID}", f"data source {PROMETHEUS_UID}"]
    assert report.created == []


def test_without_prometheus_url_only_clickhouse_is_created(grafana: GrafanaStandIn) -> None:
    settings = _settings(grafana, prometheus_url="")
    bootstrap(connect(settings), plan(settings, MODELS))
    assert set(grafana.state.datasources) == {CLICKHOUSE_UID}


def test_a_wrong_token_stops_at_the_first_call(grafana: GrafanaStandIn) -> None:
    settings = _settings(grafana, token="wrong")
    with pytest.raises(BootstrapError, match=f"data source '{CLICKHOUSE_UID}': Grafana answered 401"):
        bootstrap(connect(settings), plan(settings, MODELS))
    assert len(grafana.state.calls) == 1


def test_an_unreachable_grafana_is_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = GrafanaSettings(url=f"http://127.0.0.1:{port}", token=TOKEN, timeout_s=2)
    with pytest.raises(BootstrapError, match="cannot reach Grafana"):
        bootstrap(connect(settings), plan(settings, MODELS))


def test_cli_bootstrap(grafana: GrafanaStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LODESTAR_GRAFANA_CLICKHOUSE_PASSWORD", "from-env")
    result = CliRunner().invoke(
        build_app(),
        ["grafana", "bootstrap", "--url", grafana.url, "--token", TOKEN, "--clickhouse-host", "ch"],
    )
    assert result.exit_code == 0, result.output
    assert f"created data source {CLICKHOUSE_UID}" in result.output
    assert "uploaded dashboard lodestar-routing /d/lodestar-routing/x" in result.output
    assert "no --prometheus-url" in result.output
    assert grafana.state.datasources[CLICKHOUSE_UID]["secureJsonData"] == {"password": "from-env"}


def test_cli_bootstrap_failure_is_one_line(grafana: GrafanaStandIn) -> None:
    result = CliRunner().invoke(build_app(), ["grafana", "bootstrap", "--url", grafana.url, "--token", "nope"])
    assert result.exit_code == 1
    assert "lodestar grafana: data source 'lodestar-clickhouse': Grafana answered 401: Unauthorized" in result.output
