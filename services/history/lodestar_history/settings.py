"""History service settings (env prefix ``LODESTAR_HISTORY_``); the password only from the env."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_sql_dir() -> Path:
    """``infra/clickhouse`` of the source tree this package lives in."""
    return Path(__file__).resolve().parents[3] / "infra" / "clickhouse"


class HistorySettings(BaseSettings):
    """Where history is stored, how the sink batches, where the query API listens."""

    model_config = SettingsConfigDict(env_prefix="LODESTAR_HISTORY_", extra="ignore")

    clickhouse_dsn: str = Field(
        default="chdb:.lodestar/data/history",
        description="chdb:///abs/dir or chdb:rel/dir (embedded) or http(s)://user@host:8123/database (server)",
    )
    clickhouse_database: str = Field(default="lodestar", description="database when the DSN names none")
    clickhouse_password: SecretStr | None = Field(default=None, description="server password (never in the DSN)")
    clickhouse_ca_cert: str | None = Field(default=None, description="CA bundle for https DSNs")
    clickhouse_verify: bool = Field(default=True, description="verify the server certificate (https)")
    clickhouse_client_cert: str | None = Field(default=None, description="client certificate for mutual TLS (https)")
    clickhouse_client_key: str | None = Field(default=None, description="its private key, if not in the cert file")
    clickhouse_connect_timeout_s: float = Field(default=10.0, gt=0)
    clickhouse_timeout_s: float = Field(default=300.0, gt=0, description="HTTP send/receive timeout")
    sql_dir: Path = Field(default_factory=default_sql_dir, description="DDL files; named queries in queries/")
    retention_days: int = Field(default=30, ge=1, description="TTL of every table but model_updates")
    model_retention_days: int = Field(default=365, ge=1, description="TTL of model_updates")

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    group_id: str = "lodestar-history"
    batch_max_rows: int = Field(default=5000, ge=1, description="flush when this many rows are buffered")
    flush_interval_s: float = Field(default=1.0, gt=0, description="flush at least this often while rows wait")
    max_backoff_s: float = Field(default=10.0, gt=0, description="cap of the retry backoff (broker, inserts)")
    allow_raw_sql: bool = Field(default=False, description="serve POST /sql (one read-only SELECT)")
    raw_sql_timeout_s: int = Field(default=30, ge=1, description="max_execution_time of raw SQL")
    log_level: str = "INFO"

    @property
    def url(self) -> str:
        """Base URL of the query API as a local client reaches it."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    def retention_params(self) -> dict[str, int]:
        """The DDL's retention parameters."""
        return {"retention_days": self.retention_days, "model_retention_days": self.model_retention_days}
