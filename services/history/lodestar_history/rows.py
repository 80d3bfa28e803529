"""Events → rows of their ClickHouse table. Pure; one function per event type.

Column tuples here must match ``infra/clickhouse/00*_*.sql`` (minus ``inserted_at``, which the
table fills); a unit test checks them against the migrated tables. Values that cannot be
stored (an integer beyond UInt64) raise :class:`RowMappingError`; the sink then stores a dead
letter instead, so one odd event never blocks the batch behind it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lodestar_schemas.codec import encode_event
from lodestar_schemas.events import (
    DeadLetter,
    Event,
    InstanceState,
    ModelUpdate,
    RequestOutcome,
    RouteDecision,
)

_U64_MAX = 2**64 - 1
_U32_MAX = 2**32 - 1
#: namespace of the ids of "not storable" dead letters (uuid5 of the original event id)
UNSTORABLE_NAMESPACE = uuid.UUID("6c1b3f4e-2f0e-4d1a-9a56-0f1c6c1e7b01")

_ENVELOPE = ("event_id", "ts", "schema_version")
_SOURCE = ("kafka_partition", "kafka_offset")

COLUMNS: dict[str, tuple[str, ...]] = {
    "instance_states": (
        *_ENVELOPE,
        "instance_id",
        "url",
        "model",
        "hardware",
        "num_running",
        "num_waiting",
        "kv_usage_frac",
        "prefix_hit_rate",
        "prefix_cache_hits_total",
        "prefix_cache_queries_total",
        "block_size",
        "num_gpu_blocks",
        "healthy",
        "consecutive_failures",
        "scrape_latency_s",
        *_SOURCE,
    ),
    "route_decisions": (
        *_ENVELOPE,
        "decision_id",
        "model",
        "instance_id",
        "policy",
        "model_version",
        "feature_schema_version",
        "prompt_tokens",
        "cached_prefix_tokens",
        "prefix_segments",
        "explore",
        "fallback",
        "propensity",
        "num_candidates",
        "candidate_ids",
        "candidate_scores",
        "candidate_features",
        "chosen_index",
        "chosen_score",
        "chosen_features",
        *_SOURCE,
    ),
    "request_outcomes": (
        *_ENVELOPE,
        "request_id",
        "decision_id",
        "model",
        "instance_id",
        "policy",
        "stream",
        "prompt_tokens",
        "completion_tokens",
        "ttft_s",
        "tpot_s",
        "e2e_s",
        "status",
        "http_status",
        "error_class",
        "fallback",
        "attempts",
        *_SOURCE,
    ),
    "model_updates": (
        *_ENVELOPE,
        "version",
        "parent_version",
        "feature_schema_version",
        "weights_format",
        "weights_bytes",
        "weights_sha256",
        "trained_samples",
        "metrics",
        *_SOURCE,
    ),
    "dead_letters": (
        *_ENVELOPE,
        "source_topic",
        "source_partition",
        "source_offset",
        "reason",
        "field",
        "payload_bytes",
        "payload_head",
        *_SOURCE,
    ),
}


class RowMappingError(ValueError):
    """The event is valid but a value does not fit its column; the message names the field."""


@dataclass(frozen=True)
class Row:
    """One row for ``table``, values in :data:`COLUMNS` order."""

    table: str
    values: tuple[Any, ...]


def _uint(value: int | None, name: str, limit: int = _U64_MAX) -> int | None:
    if value is not None and not 0 <= value <= limit:
        raise RowMappingError(f"{name}={value} does not fit an unsigned {limit.bit_length()}-bit column")
    return value


def _u(value: int, name: str, limit: int = _U64_MAX) -> int:
    _uint(value, name, limit)
    return value


def _instance_state(e: InstanceState) -> dict[str, Any]:
    return {
        "instance_id": e.instance_id,
        "url": e.url,
        "model": e.model,
        "hardware": e.hardware,
        "num_running": _u(e.num_running, "num_running"),
        "num_waiting": _u(e.num_waiting, "num_waiting"),
        "kv_usage_frac": e.kv_usage_frac,
        "prefix_hit_rate": e.prefix_hit_rate,
        "prefix_cache_hits_total": _uint(e.prefix_cache_hits_total, "prefix_cache_hits_total"),
        "prefix_cache_queries_total": _uint(e.prefix_cache_queries_total, "prefix_cache_queries_total"),
        "block_size": _uint(e.block_size, "block_size"),
        "num_gpu_blocks": _uint(e.num_gpu_blocks, "num_gpu_blocks"),
        "healthy": e.healthy,
        "consecutive_failures": _u(e.consecutive_failures, "consecutive_failures"),
        "scrape_latency_s": e.scrape_latency_s,
    }


def _route_decision(e: RouteDecision) -> dict[str, Any]:
    ids = [c.instance_id for c in e.candidates]
    chosen = ids.index(e.instance_id) if e.instance_id in ids else None
    return {
        "decision_id": e.decision_id,
        "model": e.model,
        "instance_id": e.instance_id,
        "policy": e.policy,
        "model_version": _uint(e.model_version, "model_version"),
        "feature_schema_version": _uint(e.feature_schema_version, "feature_schema_version"),
        "prompt_tokens": _u(e.prompt_tokens, "prompt_tokens"),
        "cached_prefix_tokens": _u(e.cached_prefix_tokens, "cached_prefix_tokens"),
        "prefix_segments": list(e.prefix_segments),
        "explore": e.explore,
        "fallback": e.fallback,
        "propensity": e.propensity,
        "num_candidates": _u(len(ids), "candidates", _U32_MAX),
        "candidate_ids": ids,
        "candidate_scores": [c.score for c in e.candidates],
        "candidate_features": [dict(c.features) for c in e.candidates],
        "chosen_index": 0 if chosen is None else chosen + 1,
        "chosen_score": None if chosen is None else e.candidates[chosen].score,
        "chosen_features": {} if chosen is None else dict(e.candidates[chosen].features),
    }


def _request_outcome(e: RequestOutcome) -> dict[str, Any]:
    return {
        "request_id": e.request_id,
        "decision_id": e.decision_id,
        "model": e.model,
        "instance_id": e.instance_id,
        "policy": e.policy,
        "stream": e.stream,
        "prompt_tokens": _u(e.prompt_tokens, "prompt_tokens"),
        "completion_tokens": _u(e.completion_tokens, "completion_tokens"),
        "ttft_s": e.ttft_s,
        "tpot_s": e.tpot_s,
        "e2e_s": e.e2e_s,
        "status": e.status,
        "http_status": e.http_status,
        "error_class": e.error_class,
        "fallback": e.fallback,
        "attempts": _u(e.attempts, "attempts", _U32_MAX),
    }


def _model_update(e: ModelUpdate) -> dict[str, Any]:
    return {
        "version": _u(e.version, "version"),
        "parent_version": _uint(e.parent_version, "parent_version"),
        "feature_schema_version": _u(e.feature_schema_version, "feature_schema_version"),
        "weights_format": e.weights_format,
        "weights_bytes": len(e.weights),
        "weights_sha256": e.weights_sha256,
        "trained_samples": _u(e.trained_samples, "trained_samples"),
        "metrics": dict(e.metrics),
    }


def _dead_letter(e: DeadLetter) -> dict[str, Any]:
    return {
        "source_topic": e.source_topic,
        "source_partition": _u(e.partition, "partition", _U32_MAX),
        "source_offset": _u(e.offset, "offset"),
        "reason": e.reason,
        "field": e.field,
        "payload_bytes": _u(e.payload_bytes, "payload_bytes"),
        "payload_head": e.payload_head,
    }


_MAPPERS: dict[type[Event], tuple[str, Callable[[Any], dict[str, Any]]]] = {
    InstanceState: ("instance_states", _instance_state),
    RouteDecision: ("route_decisions", _route_decision),
    RequestOutcome: ("request_outcomes", _request_outcome),
    ModelUpdate: ("model_updates", _model_update),
    DeadLetter: ("dead_letters", _dead_letter),
}

TABLES: tuple[str, ...] = tuple(table for table, _ in _MAPPERS.values())


def table_for(event_type: type[Event]) -> str | None:
    """The table that stores events of ``event_type``, None for a type no table stores."""
    entry = _MAPPERS.get(event_type)
    return entry[0] if entry else None


def to_row(event: Event, partition: int, offset: int) -> Row:
    """The row of ``event`` read at ``partition``/``offset``; RowMappingError if it cannot be stored."""
    try:
        table, mapper = _MAPPERS[type(event)]
    except KeyError:
        raise RowMappingError(f"no table stores {type(event).__name__}") from None
    values = {
        "event_id": event.event_id,
        "ts": event.ts,
        "schema_version": event.schema_version,
        **mapper(event),
        "kafka_partition": _u(partition, "kafka_partition", _U32_MAX),
        "kafka_offset": _u(offset, "kafka_offset"),
    }
    return Row(table, tuple(values[c] for c in COLUMNS[table]))


def unstorable_row(event: Event, topic: str, partition: int, offset: int, reason: str) -> Row:
    """A ``dead_letters`` row for an event that decoded but cannot be stored.

    Its id is derived from the event id, so a re-read of the same event is deduped too.
    """
    payload = encode_event(event)
    letter = DeadLetter(
        event_id=uuid.uuid5(UNSTORABLE_NAMESPACE, str(event.event_id)),
        ts=event.ts,
        source_topic=topic,
        partition=min(partition, _U32_MAX),
        offset=min(offset, _U64_MAX),
        reason=f"not storable: {reason}"[:2000],
        payload_bytes=len(payload),
        payload_head=payload[:4096],
    )
    return to_row(letter, min(partition, _U32_MAX), min(offset, _U64_MAX))
