"""Put the Lodestar data sources and dashboards into a Grafana that already runs, through its
HTTP API with grafana-client (for people who do not use the compose Grafana).

Idempotent, in this order:

1. each data source: ``GET /api/datasources/uid/<uid>``; 404 → ``POST /api/datasources``,
   else ``PUT /api/datasources/uid/<uid>`` (same uid, so the dashboards' references hold);
2. the folder: ``GET /api/folders/<uid>``; 404 → ``POST /api/folders``;
3. each dashboard: ``POST /api/dashboards/db`` with ``overwrite: true`` into that folder.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException

from lodestar.grafana.datasources import ClickHouseConnection, clickhouse_datasource, prometheus_datasource
from lodestar.grafana.settings import GrafanaSettings


class BootstrapError(RuntimeError):
    """Grafana refused a call or could not be reached; the message names the step."""


@dataclass(frozen=True)
class BootstrapPlan:
    datasources: tuple[dict[str, Any], ...]
    folder_uid: str
    folder_title: str
    dashboards: tuple[dict[str, Any], ...]


@dataclass
class BootstrapReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    dashboards: list[str] = field(default_factory=list)


def plan(settings: GrafanaSettings, dashboards: Sequence[dict[str, Any]]) -> BootstrapPlan:
    """What to create for ``settings``: ClickHouse always, Prometheus when it has a URL."""
    password = settings.clickhouse_password.get_secret_value() if settings.clickhouse_password else None
    sources = [
        clickhouse_datasource(
            ClickHouseConnection(
                host=settings.clickhouse_host,
                port=settings.clickhouse_port,
                database=settings.clickhouse_database,
                username=settings.clickhouse_user,
                password=password,
                protocol=settings.clickhouse_protocol,
                secure=settings.clickhouse_secure,
            )
        )
    ]
    if settings.prometheus_url:
        sources.append(prometheus_datasource(settings.prometheus_url))
    return BootstrapPlan(tuple(sources), settings.folder_uid, settings.folder_title, tuple(dashboards))


class GrafanaHttp:
    """The grafana-client calls the bootstrap makes (typed; grafana-client is not)."""

    def __init__(self, api: Any) -> None:
        self._api = api

    def get_datasource(self, uid: str) -> Any:
        return self._api.datasource.get_datasource_by_uid(uid)

    def create_datasource(self, body: dict[str, Any]) -> Any:
        return self._api.datasource.create_datasource(body)

    def update_datasource(self, uid: str, body: dict[str, Any]) -> Any:
        return self._api.datasource.update_datasource_by_uid(uid, body)

    def get_folder(self, uid: str) -> Any:
        return self._api.folder.get_folder(uid)

    def create_folder(self, uid: str, title: str) -> Any:
        return self._api.folder.create_folder(title, uid=uid)

    def save_dashboard(self, body: dict[str, Any]) -> Any:
        return self._api.dashboard.update_dashboard(body)


def connect(settings: GrafanaSettings) -> GrafanaHttp:
    token = settings.token.get_secret_value() if settings.token else None
    api: Any = GrafanaApi.from_url(settings.url, credential=token, timeout=settings.timeout_s)
    return GrafanaHttp(api)


def _call(step: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except GrafanaException as exc:
        raise BootstrapError(f"{step}: Grafana answered {exc.status_code or 'no response'}: {exc.message}") from None
    except OSError as exc:  # connection refused, DNS, TLS (niquests' errors are OSErrors)
        raise BootstrapError(f"{step}: cannot reach Grafana ({type(exc).__name__}: {exc})") from None


def _exists(step: str, fn: Callable[[], Any]) -> bool:
    try:
        fn()
    except GrafanaClientError as exc:
        if exc.status_code == 404:
            return False
        raise BootstrapError(f"{step}: Grafana answered {exc.status_code}: {exc.message}") from None
    except GrafanaException as exc:
        raise BootstrapError(f"{step}: Grafana answered {exc.status_code or 'no response'}: {exc.message}") from None
    except OSError as exc:
        raise BootstrapError(f"{step}: cannot reach Grafana ({type(exc).__name__}: {exc})") from None
    return True


def bootstrap(api: GrafanaHttp, the_plan: BootstrapPlan) -> BootstrapReport:
    """Apply ``the_plan``; BootstrapError at the first refused call."""
    report = BootstrapReport()
    for source in the_plan.datasources:
        uid: str = source["uid"]
        step = f"data source {uid!r}"
        if _exists(step, functools.partial(api.get_datasource, uid)):
            _call(step, functools.partial(api.update_datasource, uid, source))
            report.updated.append(f"data source {uid}")
        else:
            _call(step, functools.partial(api.create_datasource, source))
            report.created.append(f"data source {uid}")
    step = f"folder {the_plan.folder_uid!r}"
    if not _exists(step, functools.partial(api.get_folder, the_plan.folder_uid)):
        _call(step, functools.partial(api.create_folder, the_plan.folder_uid, the_plan.folder_title))
        report.created.append(f"folder {the_plan.folder_uid}")
    for model in the_plan.dashboards:
        body = {
            "dashboard": {**model, "id": None},
            "folderUid": the_plan.folder_uid,
            "overwrite": True,
            "message": "lodestar grafana bootstrap",
        }
        answer = _call(f"dashboard {model.get('uid')!r}", functools.partial(api.save_dashboard, body))
        url = answer.get("url", "") if isinstance(answer, dict) else ""
        report.dashboards.append(f"{model.get('uid')} {url}".strip())
    return report
