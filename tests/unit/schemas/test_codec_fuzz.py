"""hypothesis on the event decoders: whatever the bytes, ``decode_event`` returns an event of
the topic's model or raises EventDecodeError naming the topic — never anything else. Inputs:
arbitrary bytes, arbitrary JSON, and valid events with fields replaced, removed or added."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lodestar_schemas import Event, EventDecodeError, decode_event, encode_event
from lodestar_schemas.topics import TOPICS, spec_for_event

SETTINGS = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))  # fmt: skip
TOPIC_NAMES = st.sampled_from([spec.name for spec in TOPICS])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def _decode_or_refuse(topic: Any, data: bytes | None) -> Event | None:
    """The event, or None after a well-formed refusal; anything else fails the test."""
    spec = next(s for s in TOPICS if s.name == topic)
    try:
        event = decode_event(topic, data)
    except EventDecodeError as exc:
        assert exc.topic == spec.name.value and spec.name.value in str(exc)
        return None
    assert isinstance(event, spec.model)
    assert decode_event(topic, encode_event(event)) == event  # what decodes, round-trips
    return event


@SETTINGS
@given(topic=TOPIC_NAMES, data=st.binary(max_size=512))
def test_arbitrary_bytes(topic: Any, data: bytes) -> None:
    _decode_or_refuse(topic, data)


@SETTINGS
@given(topic=TOPIC_NAMES, value=JSON_VALUES, version=st.sampled_from([1, 0, 2, "1", None, 1.0, True]))
def test_arbitrary_json(topic: Any, value: Any, version: Any) -> None:
    if isinstance(value, dict):
        value = {**value, "schema_version": version}
    _decode_or_refuse(topic, json.dumps(value).encode())


def test_mutated_valid_events(events: list[Event]) -> None:
    originals = [(spec_for_event(e).name, json.loads(encode_event(e))) for e in events]

    @SETTINGS
    @given(
        which=st.integers(0, len(originals) - 1),
        data=st.data(),
        value=JSON_VALUES,
        action=st.sampled_from(["replace", "remove", "add", "replace-nested"]),
    )
    def mutate(which: int, data: st.DataObject, value: Any, action: str) -> None:
        topic, raw = originals[which]
        raw = json.loads(json.dumps(raw))  # a copy
        key = data.draw(st.sampled_from(sorted(raw)))
        if action == "replace":
            raw[key] = value
        elif action == "remove":
            del raw[key]
        elif action == "add":
            raw[data.draw(st.text(min_size=1, max_size=10))] = value
        else:
            nested = [k for k, v in raw.items() if isinstance(v, (dict, list)) and v]
            if nested:
                container = raw[data.draw(st.sampled_from(sorted(nested)))]
                if isinstance(container, dict):
                    container[data.draw(st.sampled_from(sorted(container)))] = value
                else:
                    container[data.draw(st.integers(0, len(container) - 1))] = value
        _decode_or_refuse(topic, json.dumps(raw).encode())

    mutate()
