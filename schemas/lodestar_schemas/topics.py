"""Topic registry: topic name → event model, message key, partitions, retention/compaction.

A namespace prefix (``LODESTAR_KAFKA_TOPIC_PREFIX``) lets tests and several deployments share
one broker; the base names below never change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lodestar_schemas.events import (
    DeadLetter,
    Event,
    InstanceState,
    ModelUpdate,
    RequestOutcome,
    RouteDecision,
)

_DAY_MS = 24 * 3600 * 1000


class TopicName(StrEnum):
    INSTANCE_STATE = "lodestar.instance-state"
    ROUTE_DECISIONS = "lodestar.route-decisions"
    REQUEST_OUTCOMES = "lodestar.request-outcomes"
    MODEL_UPDATES = "lodestar.model-updates"
    DEAD_LETTER = "lodestar.dead-letter"


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is laid out and which event it carries."""

    name: TopicName
    model: type[Event]
    key: Callable[[Any], bytes]
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    max_message_bytes: int = 1_048_576

    def full_name(self, prefix: str = "") -> str:
        return f"{prefix}{self.name.value}"


def _utf8(value: str) -> bytes:
    return value.encode("utf-8")


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(
        TopicName.INSTANCE_STATE,
        InstanceState,
        key=lambda e: _utf8(e.instance_id),
        partitions=1,
        config={"retention.ms": str(1 * _DAY_MS)},
    ),
    TopicSpec(
        TopicName.ROUTE_DECISIONS,
        RouteDecision,
        key=lambda e: _utf8(e.decision_id),
        partitions=4,
        config={"retention.ms": str(7 * _DAY_MS)},
    ),
    TopicSpec(
        TopicName.REQUEST_OUTCOMES,
        RequestOutcome,
        key=lambda e: _utf8(e.decision_id),
        partitions=4,
        config={"retention.ms": str(7 * _DAY_MS)},
    ),
    TopicSpec(
        TopicName.MODEL_UPDATES,
        ModelUpdate,
        # One key: compaction keeps the newest model; history lives in ClickHouse.
        key=lambda e: b"predictor",
        partitions=1,
        config={"cleanup.policy": "compact"},
        max_message_bytes=8 * 1_048_576,
    ),
    TopicSpec(
        TopicName.DEAD_LETTER,
        DeadLetter,
        key=lambda e: _utf8(e.source_topic),
        partitions=1,
        config={"retention.ms": str(14 * _DAY_MS)},
    ),
)

_BY_NAME: dict[str, TopicSpec] = {spec.name.value: spec for spec in TOPICS}


def topic_spec(name: str | TopicName, prefix: str = "") -> TopicSpec:
    """The spec for a base or prefixed topic name; KeyError naming the topic otherwise."""
    base = str(name.value if isinstance(name, TopicName) else name)
    if prefix and base.startswith(prefix):
        base = base[len(prefix) :]
    try:
        return _BY_NAME[base]
    except KeyError:
        raise KeyError(f"unknown topic {name!r}; known: {sorted(_BY_NAME)}") from None


def spec_for_event(event: Event) -> TopicSpec:
    """The spec of the topic that carries events of ``event``'s type."""
    for spec in TOPICS:
        if type(event) is spec.model:
            return spec
    raise KeyError(f"no topic carries {type(event).__name__}")
