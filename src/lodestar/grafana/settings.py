"""Settings of ``lodestar grafana bootstrap`` (env prefix ``LODESTAR_GRAFANA_``).

Secrets (the API token, the ClickHouse password) may come from the environment so that they
stay out of process listings and shell history.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GrafanaSettings(BaseSettings):
    """An existing Grafana, and where *that* Grafana's server reaches ClickHouse and Prometheus."""

    model_config = SettingsConfigDict(env_prefix="LODESTAR_GRAFANA_", extra="ignore")

    url: str = Field(default="http://127.0.0.1:3000", description="Grafana base URL (user:password@ allowed)")
    token: SecretStr | None = Field(default=None, description="service-account token (Bearer)")
    timeout_s: float = Field(default=10.0, gt=0)
    folder_uid: str = Field(default="lodestar", min_length=1, max_length=40)
    folder_title: str = Field(default="Lodestar", min_length=1)
    clickhouse_host: str = Field(default="clickhouse", min_length=1)
    clickhouse_port: int = Field(default=8123, ge=1, le=65535)
    clickhouse_protocol: Literal["http", "native"] = "http"
    clickhouse_secure: bool = False
    clickhouse_database: str = Field(default="lodestar", min_length=1)
    clickhouse_user: str = Field(default="lodestar", min_length=1)
    clickhouse_password: SecretStr | None = Field(default=None, description="ClickHouse password (environment)")
    prometheus_url: str = Field(default="", description="Prometheus scraping the services; '' = no such source")
