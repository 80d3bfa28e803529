"""Bytes ↔ events. Pure functions; every decoding failure is an :class:`EventDecodeError`."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from lodestar_schemas.events import Event
from lodestar_schemas.topics import TopicName, topic_spec


class EventDecodeError(ValueError):
    """Bytes on ``topic`` are not a valid event; ``field`` names the offending field if known."""

    def __init__(self, topic: str, reason: str, field: str | None = None) -> None:
        self.topic = topic
        self.reason = reason
        self.field = field
        where = f" field {field!r}" if field else ""
        super().__init__(f"cannot decode event on topic {topic!r}:{where} {reason}")


def encode_event(event: Event) -> bytes:
    """JSON bytes of ``event`` (bytes fields base64)."""
    return event.model_dump_json().encode("utf-8")


def decode_event(topic: str | TopicName, data: bytes | None, prefix: str = "") -> Event:
    """Decode ``data`` read from ``topic`` into that topic's event model.

    Raises EventDecodeError for: a tombstone (None), oversized payloads, bytes that are not
    UTF-8 JSON objects, an unsupported ``schema_version``, or a payload the model rejects.
    """
    spec = topic_spec(topic, prefix)
    name = spec.name.value
    if data is None:
        raise EventDecodeError(name, "empty message (tombstone)")
    if len(data) > spec.max_message_bytes:
        raise EventDecodeError(name, f"payload of {len(data)} bytes exceeds {spec.max_message_bytes}")
    try:
        raw: Any = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventDecodeError(name, f"not UTF-8 JSON: {exc}") from None
    except RecursionError:
        raise EventDecodeError(name, "JSON nested too deeply") from None
    if not isinstance(raw, dict):
        raise EventDecodeError(name, f"expected a JSON object, got {type(raw).__name__}")
    version = raw.get("schema_version")
    if isinstance(version, (list, dict)) or version not in spec.model.SUPPORTED_VERSIONS:  # lists: unhashable
        supported = sorted(spec.model.SUPPORTED_VERSIONS)
        raise EventDecodeError(name, f"unsupported version {version!r} (supported: {supported})", "schema_version")
    try:
        return spec.model.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or None
        raise EventDecodeError(name, f"{first['msg']} ({exc.error_count()} error(s))", loc) from None
