"""Gateway settings (env prefix ``LODESTAR_GATEWAY_``); the broker is ``KafkaSettings``.

Durations are seconds. The upstream API key comes only from the environment
(``LODESTAR_GATEWAY_UPSTREAM_API_KEY``); client ``Authorization`` headers are never forwarded.
Client API keys are configured as their SHA-256 only (``API_KEYS`` / ``API_KEYS_FILE``, see
:mod:`lodestar_gateway.auth`); with none configured the gateway is open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lodestar.policy.directory import check_directory_settings
from lodestar.tokenizer import BLOCK_SIZE
from lodestar_router.settings import Port, StaticInstance  # one description of an instance for both
from lodestar_schemas.router_api import MAX_BLOCKS

PositiveSeconds = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]

#: The longest prompt the router contract can describe (its block-hash list is bounded).
MAX_ROUTABLE_PROMPT_TOKENS = MAX_BLOCKS * BLOCK_SIZE


class KeyLimits(BaseModel):
    """One API key's limits, replacing the defaults (None: unlimited)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_rps: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    burst: int = Field(default=10, ge=1)
    max_streams: int | None = Field(default=None, ge=1)


class GatewaySettings(BaseSettings):
    """Listen address, the router, the local fallback, request limits, upstream timeouts."""

    model_config = SettingsConfigDict(env_prefix="LODESTAR_GATEWAY_", extra="ignore")

    host: str = "127.0.0.1"
    port: Port = Field(default=8080, description="the OpenAI-compatible API, /health and /metrics")

    # --- the router and the local fallback -------------------------------------------------
    router_url: str = Field(
        default="http://127.0.0.1:8091", description="the router's base URL; empty: always decide locally"
    )
    router_embedded: bool = Field(
        default=False,
        description="run the router in this process (its settings from LODESTAR_ROUTER_*; router_url unused): "
        "no HTTP exchange per request",
    )
    route_timeout_s: PositiveSeconds = Field(default=0.05, description="budget of one POST /v1/route")
    route_timeout_per_1k_tokens_s: float = Field(
        default=0.005,
        ge=0.0,
        description="extra route budget per 1,000 prompt tokens (bigger bodies; seconds of prefill at stake)",
    )
    router_failure_threshold: int = Field(
        default=3, ge=1, description="consecutive router timeouts/connection errors before it is skipped"
    )
    router_cooldown_s: PositiveSeconds = Field(
        default=1.0, description="how long the router is skipped after that (then asked again)"
    )
    fallback_profile: str = Field(
        default="least-request", min_length=1, description="local policy when the router fails: name or YAML path"
    )
    fallback_seed: int = Field(default=0, description="seed of the local policy's stochastic plugins")
    staleness_s: PositiveSeconds = Field(default=2.0, description="an older instance state counts as unhealthy")
    remove_after_s: PositiveSeconds = Field(default=30.0, description="an instance silent this long is forgotten")
    instances: list[StaticInstance] = Field(
        default_factory=list, description='JSON list of {"instance_id", "url", "model", "max_model_len"?}'
    )
    ejection_base_s: PositiveSeconds = Field(
        default=1.0, description="outlier ejection: first backoff of an instance that failed (doubles on repeats)"
    )
    ejection_max_s: PositiveSeconds = Field(default=30.0, description="outlier ejection: longest backoff")
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

    # --- limits ------------------------------------------------------------------------------
    max_body_bytes: int = Field(default=8 * 1_048_576, ge=1024, description="larger bodies get 413")
    max_prompt_tokens: int = Field(
        default=131_072, ge=1, le=MAX_ROUTABLE_PROMPT_TOKENS, description="longer prompts get 400"
    )
    max_output_tokens: int = Field(default=32_768, ge=1, description="larger max_tokens get 400")
    max_streams_per_key: int | None = Field(
        default=None, ge=1, description="streamed requests open at once per API key (no keys: in all); beyond: 429"
    )

    # --- clients: API keys and rate limits ---------------------------------------------------
    api_keys: SecretStr | None = Field(
        default=None, description="name:sha256hex entries (newlines or commas between them); env only"
    )
    api_keys_file: Path | None = Field(default=None, description="a file of name:sha256hex lines (# comments)")
    rate_limit_rps: float | None = Field(
        default=None, gt=0.0, allow_inf_nan=False, description="requests per second per API key (no keys: in all)"
    )
    rate_limit_burst: int = Field(default=10, ge=1, description="requests a client may send at once (bucket size)")
    key_limits: dict[str, KeyLimits] = Field(
        default_factory=dict, description='JSON {"key name": {"rate_rps", "burst", "max_streams"}}: per-key limits'
    )

    # --- upstream --------------------------------------------------------------------------
    connect_timeout_s: PositiveSeconds = Field(default=2.0, description="TCP connect to an instance")
    first_token_timeout_s: PositiveSeconds = Field(
        default=120.0, description="from sending the request to the first content token"
    )
    idle_timeout_s: PositiveSeconds = Field(default=60.0, description="longest silence between upstream chunks")
    response_timeout_s: PositiveSeconds = Field(
        default=600.0, description="non-streamed requests: from sending the request to the whole response"
    )
    max_attempts: int = Field(default=3, ge=1, le=10, description="instances tried when connections fail")
    max_connections: int = Field(
        default=4096, ge=1, description="connections to instances, in use or idle (a request beyond waits for one)"
    )
    upstream_api_key: SecretStr | None = Field(default=None, description="bearer token for instances (env only)")

    # --- feedback and events ---------------------------------------------------------------
    feedback_queue: int = Field(default=100_000, ge=1, description="feedback events waiting for the router")
    feedback_batch: int = Field(default=1000, ge=1, le=10_000, description="events per POST /v1/feedback")
    feedback_linger_s: float = Field(default=0.02, ge=0.0, le=1.0, description="wait to fill a feedback batch")
    feedback_timeout_s: PositiveSeconds = Field(default=1.0, description="budget of one POST /v1/feedback")
    publish_buffer: int = Field(default=100_000, ge=1, description="outcome events buffered while the broker lags")
    publish_linger_s: float = Field(
        default=0.05, ge=0.0, le=1.0, description="outcome events wait this long to leave in batches (0: at once)"
    )

    # --- logs --------------------------------------------------------------------------------
    log_text: bool = Field(default=False, description="log prompt text (never on a topic); off by default")
    log_level: str = "INFO"
    json_logs: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> GatewaySettings:
        check_directory_settings(self)
        return self
