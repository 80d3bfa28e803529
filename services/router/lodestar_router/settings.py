"""Router settings (env prefix ``LODESTAR_ROUTER_``); the broker is ``KafkaSettings``.

The admin token comes only from the environment (``LODESTAR_ROUTER_ADMIN_TOKEN``); without it
the admin port is not opened at all.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lodestar.policy.directory import check_directory_settings

Port = Annotated[int, Field(ge=0, le=65535)]


class StaticInstance(BaseModel):
    """An instance known without the instance-state topic (tests, simple setups)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_id: str = Field(min_length=1, max_length=256)
    url: str = Field(min_length=1, max_length=2048)
    model: str = Field(min_length=1, max_length=256)
    max_model_len: int | None = Field(default=None, ge=1)


class RouterSettings(BaseSettings):
    """Ports, the policy profile, instance-state freshness, in-flight expiry, buffers."""

    model_config = SettingsConfigDict(env_prefix="LODESTAR_ROUTER_", extra="ignore")

    host: str = "127.0.0.1"
    port: Port = Field(default=8091, description="/v1/route, /v1/feedback, /v1/model, /health, /metrics")
    admin_host: str = "127.0.0.1"
    admin_port: Port = Field(default=8095, description="/admin/* (bearer token); closed without a token")
    admin_token: SecretStr | None = Field(default=None, description="admin bearer token (environment only)")
    profile: str = Field(default="lodestar", min_length=1, description="shipped profile name or YAML path")
    seed: int = Field(default=0, description="seeds every stochastic plugin of the policy")
    staleness_s: float = Field(
        default=2.0, gt=0.0, description="an instance whose last state is older is treated as unhealthy (llm-d: 2 s)"
    )
    remove_after_s: float = Field(default=30.0, gt=0.0, description="an instance silent this long is forgotten")
    inflight_timeout_s: float = Field(
        default=900.0, gt=0.0, description="a routed request without final feedback this long is released"
    )
    sweep_interval_s: float = Field(default=0.5, gt=0.0, le=60.0, description="period of the expiry sweep")
    instances: list[StaticInstance] = Field(
        default_factory=list, description='JSON list of {"instance_id", "url", "model", "max_model_len"?}'
    )
    ejection_base_s: float = Field(
        default=1.0,
        gt=0.0,
        description="outlier ejection: first backoff of an instance that failed (doubles on repeats)",
    )
    ejection_max_s: float = Field(default=30.0, gt=0.0, description="outlier ejection: longest backoff")
    ejection_max_fraction: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="outlier ejection: at most this fraction of a model's instances ejected at once (at least one)",
    )
    hold_states_when_silent: bool = Field(
        default=True,
        description="while no instance state arrives at all (broker or collector down), keep the last ones",
    )
    publish_buffer: int = Field(default=100_000, ge=1, description="decision events buffered while the broker lags")
    publish_linger_s: float = Field(
        default=0.05, ge=0.0, le=1.0, description="decision events wait this long to leave in batches (0: at once)"
    )
    drain_timeout_s: float = Field(default=5.0, ge=0.0, description="at shutdown, how long buffered events may take")
    log_level: str = "INFO"
    json_logs: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> RouterSettings:
        check_directory_settings(self)
        return self
