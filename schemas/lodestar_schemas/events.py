"""Event models, one per topic. Frozen, ``extra="forbid"``, versioned, id'd and UTC-stamped.

Units are in field names (``_s`` seconds, ``_frac`` a fraction in [0, 1]). No event carries
prompt or completion text.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION: Literal[1] = 1


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Seconds = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Count = Annotated[int, Field(ge=0)]
Ident = Annotated[str, Field(min_length=1, max_length=256)]


class Event(BaseModel):
    """Common envelope: ``schema_version``, a unique ``event_id``, a tz-aware UTC ``ts``."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    #: topic-independent version of the envelope and payload layout
    SUPPORTED_VERSIONS: ClassVar[frozenset[int]] = frozenset({SCHEMA_VERSION})

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    ts: UtcDatetime = Field(default_factory=utc_now)


class InstanceState(Event):
    """One scrape of one inference instance by the collector."""

    instance_id: Ident
    url: Annotated[str, Field(min_length=1, max_length=2048)]
    model: Ident
    hardware: str | None = Field(default=None, max_length=128, description="display only; never a feature")
    num_running: Count
    num_waiting: Count
    kv_usage_frac: Fraction
    prefix_hit_rate: Fraction | None = Field(
        default=None, description="prefix-cache hits / queries since the previous scrape; None if no queries"
    )
    prefix_cache_hits_total: Count | None = None
    prefix_cache_queries_total: Count | None = None
    block_size: Annotated[int, Field(ge=1)] | None = None
    num_gpu_blocks: Count | None = None
    max_model_len: Annotated[int, Field(ge=1)] | None = Field(default=None, description="from /v1/models")
    healthy: bool
    consecutive_failures: Count = 0
    scrape_latency_s: Seconds


class CandidateRecord(BaseModel):
    """A candidate instance as the policy saw it: its features and its score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance_id: Ident
    score: Annotated[float, Field(allow_inf_nan=False)]
    features: dict[str, float] = Field(default_factory=dict)

    @field_validator("features")
    @classmethod
    def _finite(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"non-finite feature values: {bad}")
        return value


class RouteDecision(Event):
    """What the router decided for one request, with everything needed to learn from it later."""

    decision_id: Ident = Field(description="equals the request id")
    model: Ident
    instance_id: Ident
    policy: Ident
    model_version: Count | None = Field(default=None, description="predictor version used, if any")
    feature_schema_version: Count | None = None
    prompt_tokens: Count
    cached_prefix_tokens: Count = Field(default=0, description="router's prefix-index estimate for the choice")
    prefix_segments: tuple[Annotated[int, Field(ge=0, lt=2**64)], ...] = Field(
        default=(),
        max_length=1024,
        description="chained hash at every 512-token boundary of the prompt: its prefix structure, for replay",
    )
    candidates: tuple[CandidateRecord, ...] = Field(min_length=1)
    explore: bool = False
    fallback: bool = Field(
        default=False, description="decided without the model (cold-start heuristic, or in drift by queued work)"
    )
    propensity: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        default=1.0, description="probability that the policy picks instance_id given the candidates"
    )


class RequestOutcome(Event):
    """How one request went, measured at the gateway. No prompt or completion text."""

    request_id: Ident
    decision_id: Ident
    model: Ident
    instance_id: Ident | None = Field(default=None, description="None if no instance was reached")
    policy: Ident | None = None
    stream: bool
    prompt_tokens: Count
    completion_tokens: Count
    ttft_s: Seconds | None = None
    tpot_s: Seconds | None = None
    e2e_s: Seconds
    status: Literal["ok", "error", "cancelled"]
    http_status: Annotated[int, Field(ge=100, le=599)]
    error_class: str | None = Field(default=None, max_length=128)
    fallback: bool = False
    attempts: Annotated[int, Field(ge=1)] = 1


class ModelUpdate(Event):
    """A versioned predictor published by the trainer (compacted topic; newest wins)."""

    version: Annotated[int, Field(ge=1)]
    feature_schema_version: Annotated[int, Field(ge=1)]
    weights_format: Ident
    weights: bytes = Field(description="self-describing serialised model state")
    weights_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    trained_samples: Count
    metrics: dict[str, float] = Field(default_factory=dict)
    parent_version: Count | None = None

    @field_validator("metrics")
    @classmethod
    def _finite_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, v in value.items() if not math.isfinite(v)]
        if bad:
            raise ValueError(f"non-finite metrics: {bad}")
        return value


class DeadLetter(Event):
    """An event a consumer could not decode, with the reason and (truncated) original bytes."""

    source_topic: Ident
    partition: Count
    offset: Count
    reason: Annotated[str, Field(max_length=2000)]
    field: str | None = Field(default=None, max_length=256)
    payload_bytes: Count
    payload_head: bytes = Field(max_length=4096, description="first bytes of the payload, for inspection")
