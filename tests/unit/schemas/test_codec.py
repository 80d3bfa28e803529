"""Malformed bytes on every topic give EventDecodeError naming the topic (and field), never a crash."""

from __future__ import annotations

import json

import pytest

from lodestar_schemas import Event, EventDecodeError, decode_event, encode_event
from lodestar_schemas.topics import TOPICS, spec_for_event

MALFORMED: list[tuple[str, bytes | None, str | None]] = [
    ("tombstone", None, None),
    ("not utf-8", b"\xff\xfe\x00garbage", None),
    ("not json", b"{oops", None),
    ("json array", b"[1, 2]", None),
    ("missing version", b'{"instance_id": "x"}', "schema_version"),
    ("future version", b'{"schema_version": 99}', "schema_version"),
    ("version a list", b'{"schema_version": [1]}', "schema_version"),  # unhashable: was a TypeError
    ("huge payload", b'{"schema_version": 1, "x": "' + b"a" * 9_000_000 + b'"}', None),
    ("deeply nested", b"[" * 100_000 + b"]" * 100_000, None),  # json.loads: RecursionError
]


@pytest.mark.parametrize("spec", TOPICS, ids=lambda s: s.name.value)
@pytest.mark.parametrize(("case", "data", "field"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_bytes_raise_clear_error(spec, case: str, data: bytes | None, field: str | None) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EventDecodeError) as err:
        decode_event(spec.name, data)
    assert err.value.topic == spec.name.value
    assert spec.name.value in str(err.value)
    assert err.value.field == field, case


def test_wrong_field_type_names_the_field(events: list[Event]) -> None:
    for event in events:
        spec = spec_for_event(event)
        raw = json.loads(encode_event(event))
        first_required = next(
            name for name, f in spec.model.model_fields.items() if f.is_required() and name != "schema_version"
        )
        raw[first_required] = {"not": "valid"}
        with pytest.raises(EventDecodeError) as err:
            decode_event(spec.name, json.dumps(raw).encode())
        assert err.value.field is not None and err.value.field.startswith(first_required)


def test_event_of_another_topic_is_rejected(events: list[Event]) -> None:
    state, decision = events[0], events[1]
    with pytest.raises(EventDecodeError):
        decode_event(spec_for_event(decision).name, encode_event(state))
