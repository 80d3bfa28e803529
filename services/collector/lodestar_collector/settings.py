"""Collector settings (env prefix ``LODESTAR_COLLECTOR_``); the broker is ``KafkaSettings``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The collector's purpose is fresh state: llm-d scrapes every 50 ms and treats 2 s as stale.
MAX_INTERVAL_S = 0.5


class CollectorSettings(BaseSettings):
    """Where instances come from, how often and how patiently they are scraped, the own API."""

    model_config = SettingsConfigDict(env_prefix="LODESTAR_COLLECTOR_", extra="ignore")

    instances_file: Path | None = Field(
        default=None, description="YAML list of {instance_id, url, hardware?, model?}; re-read when it changes"
    )
    instances: str = Field(default="", description="static instances: ID=URL[,ID=URL…] (a bare URL: id host:port)")
    interval_s: Annotated[float, Field(gt=0.0, le=MAX_INTERVAL_S)] = Field(
        default=0.25, description="scrape period per instance, seconds (<= 0.5)"
    )
    timeout_s: Annotated[float, Field(gt=0.0, le=30.0)] = Field(
        default=0.5, description="deadline of one /metrics or /v1/models request, seconds"
    )
    failure_threshold: Annotated[int, Field(ge=1, le=1000)] = Field(
        default=3, description="consecutive failed scrapes that make an instance unhealthy"
    )
    reload_poll_s: Annotated[float, Field(gt=0.0, le=60.0)] = Field(
        default=1.0, description="how often the instances file's mtime is checked, seconds"
    )
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = Field(default=8092, description="own /health and /metrics")
    publish_buffer: Annotated[int, Field(ge=1)] = Field(
        default=100_000, description="instance states buffered while the broker is slow or down"
    )
    max_connections: Annotated[int, Field(ge=1)] = Field(
        default=1000, description="keep-alive connections of the shared HTTP client (idle ones close after 4 s)"
    )
    log_level: str = "INFO"
    json_logs: bool = True
