"""The Grafana data sources the dashboards use: fixed uids, one definition for the
provisioning file (compose) and the bootstrap command (an existing Grafana).

ClickHouse: the official ``grafana-clickhouse-datasource`` plugin (v4 settings: ``host``,
``port``, ``protocol``, ``secure``, ``username``, ``defaultDatabase``; the password in
``secureJsonData``). Prometheus: Grafana's built-in type, for the services' ``/metrics``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

CLICKHOUSE_UID = "lodestar-clickhouse"
CLICKHOUSE_TYPE = "grafana-clickhouse-datasource"
CLICKHOUSE_NAME = "Lodestar ClickHouse"
PROMETHEUS_UID = "lodestar-prometheus"
PROMETHEUS_TYPE = "prometheus"
PROMETHEUS_NAME = "Lodestar Prometheus"
#: Query-model version written into ClickHouse targets: v4 (older ones are migrated by the plugin).
CLICKHOUSE_QUERY_VERSION = "4.0.0"

#: uid → type of every data source a dashboard may reference.
PROVISIONED: dict[str, str] = {CLICKHOUSE_UID: CLICKHOUSE_TYPE, PROMETHEUS_UID: PROMETHEUS_TYPE}


def ref(uid: str) -> dict[str, str]:
    """A panel/target ``datasource`` reference."""
    return {"type": PROVISIONED[uid], "uid": uid}


@dataclass(frozen=True)
class ClickHouseConnection:
    """Where Grafana reaches ClickHouse (as Grafana's server sees it, not the browser)."""

    host: str
    port: int
    database: str
    username: str
    password: str | None
    protocol: Literal["http", "native"] = "http"
    secure: bool = False


def clickhouse_datasource(conn: ClickHouseConnection) -> dict[str, Any]:
    """The data source body (Grafana HTTP API and provisioning share these keys)."""
    body: dict[str, Any] = {
        "uid": CLICKHOUSE_UID,
        "name": CLICKHOUSE_NAME,
        "type": CLICKHOUSE_TYPE,
        "access": "proxy",
        "isDefault": True,
        "jsonData": {
            "host": conn.host,
            "port": conn.port,
            "protocol": conn.protocol,
            "secure": conn.secure,
            "username": conn.username,
            "defaultDatabase": conn.database,
        },
    }
    if conn.password is not None:
        body["secureJsonData"] = {"password": conn.password}
    return body


def prometheus_datasource(url: str) -> dict[str, Any]:
    return {
        "uid": PROMETHEUS_UID,
        "name": PROMETHEUS_NAME,
        "type": PROMETHEUS_TYPE,
        "access": "proxy",
        "isDefault": False,
        "url": url,
        "jsonData": {"httpMethod": "POST", "timeInterval": "15s"},
    }


def provisioning_document() -> dict[str, Any]:
    """``provisioning/datasources/lodestar.yaml`` for the compose Grafana: ClickHouse at
    ``clickhouse:8123`` and Prometheus at ``prometheus:9090``; the ClickHouse user and password
    come from Grafana's environment (``$CLICKHOUSE_USER`` / ``$CLICKHOUSE_PASSWORD``), which
    Grafana expands when it reads the file."""
    clickhouse = clickhouse_datasource(
        ClickHouseConnection(
            host="clickhouse",
            port=8123,
            database="${CLICKHOUSE_DB}",
            username="${CLICKHOUSE_USER}",
            password="${CLICKHOUSE_PASSWORD}",
        )
    )
    prometheus = prometheus_datasource("http://prometheus:9090")
    return {
        "apiVersion": 1,
        "deleteDatasources": [],
        "datasources": [{**clickhouse, "editable": False}, {**prometheus, "editable": False}],
    }


def dashboards_provider_document() -> dict[str, Any]:
    """``provisioning/dashboards/lodestar.yaml``: load the JSON files mounted at
    ``/var/lib/grafana/dashboards/lodestar`` into the "Lodestar" folder."""
    return {
        "apiVersion": 1,
        "providers": [
            {
                "name": "lodestar",
                "orgId": 1,
                "folder": "Lodestar",
                "folderUid": "lodestar",
                "type": "file",
                "disableDeletion": True,
                "allowUiUpdates": False,
                "updateIntervalSeconds": 30,
                "options": {"path": "/var/lib/grafana/dashboards/lodestar", "foldersFromFilesStructure": False},
            }
        ],
    }
