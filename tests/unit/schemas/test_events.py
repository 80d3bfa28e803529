"""Event models: round trip, strictness, UTC time stamps."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from lodestar_schemas import Event, InstanceState, RouteDecision, decode_event, encode_event
from lodestar_schemas.topics import TOPICS, spec_for_event, topic_spec


def test_every_topic_has_one_sample_and_round_trips(events: list[Event]) -> None:
    assert {type(e) for e in events} == {spec.model for spec in TOPICS}
    for event in events:
        spec = spec_for_event(event)
        back = decode_event(spec.name, encode_event(event))
        assert back == event
        assert back.ts.tzinfo is not None and back.ts.utcoffset() == timedelta(0)


def test_event_ids_are_unique_and_models_frozen(events: list[Event]) -> None:
    state = events[0]
    again = state.model_copy(update={"event_id": uuid.uuid4()})
    assert again.event_id != state.event_id
    with pytest.raises(ValidationError):
        state.num_running = 5  # type: ignore[misc]


def test_non_utc_timestamp_is_converted_to_utc(events: list[Event]) -> None:
    cet = timezone(timedelta(hours=1))
    data = events[0].model_dump() | {"ts": datetime(2026, 3, 1, 13, 0, tzinfo=cet)}
    state = InstanceState.model_validate(data)
    assert state.ts == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert state.ts.tzinfo == UTC


@pytest.mark.parametrize(
    ("case", "patch", "field"),
    [
        ("naive timestamp", {"ts": datetime(2026, 1, 1)}, "ts"),
        ("unknown field", {"prompt_text": "secret"}, "prompt_text"),
        ("kv above one", {"kv_usage_frac": 1.5}, "kv_usage_frac"),
        ("negative queue", {"num_waiting": -1}, "num_waiting"),
        ("empty id", {"instance_id": ""}, "instance_id"),
        ("wrong version", {"schema_version": 2}, "schema_version"),
    ],
)
def test_instance_state_rejects(case: str, patch: dict[str, object], field: str, events: list[Event]) -> None:
    data = events[0].model_dump() | patch
    with pytest.raises(ValidationError) as err:
        InstanceState.model_validate(data)
    assert field in str(err.value), case


def test_decision_requires_candidates_and_valid_propensity(events: list[Event]) -> None:
    decision = events[1]
    assert isinstance(decision, RouteDecision)
    with pytest.raises(ValidationError, match="candidates"):
        RouteDecision.model_validate(decision.model_dump() | {"candidates": ()})
    with pytest.raises(ValidationError, match="propensity"):
        RouteDecision.model_validate(decision.model_dump() | {"propensity": 0.0})
    bad_features = decision.model_dump()
    bad_features["candidates"][0]["features"] = {"queue": float("nan")}
    with pytest.raises(ValidationError, match="non-finite"):
        RouteDecision.model_validate(bad_features)


def test_topic_lookup_accepts_prefixed_names_and_names_unknown_ones() -> None:
    assert topic_spec("t1.lodestar.instance-state", prefix="t1.").model is InstanceState
    with pytest.raises(KeyError, match="unknown topic"):
        topic_spec("nope")
