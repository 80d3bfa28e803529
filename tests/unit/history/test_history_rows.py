"""Event → row mapping, one case per event type, plus the values that cannot be stored."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from lodestar_history.rows import COLUMNS, TABLES, RowMappingError, to_row, unstorable_row
from lodestar_schemas import CandidateRecord, Event, RouteDecision


@pytest.fixture
def samples(events: list[Event]) -> dict[str, Event]:
    """The shared ``sample_events()`` (one per topic) by event type name."""
    return {type(e).__name__: e for e in events}


CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "InstanceState",
        "instance_states",
        {
            "instance_id": "h100-0",
            "hardware": "H100-SXM",
            "num_running": 3,
            "num_waiting": 1,
            "kv_usage_frac": 0.42,
            "prefix_hit_rate": 0.5,
            "prefix_cache_hits_total": None,
            "block_size": None,
            "healthy": True,
            "consecutive_failures": 0,
        },
    ),
    (
        "RouteDecision",
        "route_decisions",
        {
            "decision_id": "req-1",
            "policy": "lodestar",
            "instance_id": "h100-0",
            "model_version": 3,
            "feature_schema_version": 1,
            "explore": False,
            "fallback": False,
            "propensity": 0.95,
            "num_candidates": 2,
            "candidate_ids": ["h100-0", "a10g-0"],
            "candidate_scores": [0.9, 0.2],
            "candidate_features": [{"queue": 1.0}, {"queue": 4.0}],
            "chosen_index": 1,
            "chosen_score": 0.9,
            "chosen_features": {"queue": 1.0},
        },
    ),
    (
        "RequestOutcome",
        "request_outcomes",
        {
            "request_id": "req-1",
            "decision_id": "req-1",
            "instance_id": "h100-0",
            "policy": "lodestar",
            "stream": True,
            "ttft_s": 0.12,
            "tpot_s": 0.011,
            "e2e_s": 0.82,
            "status": "ok",
            "http_status": 200,
            "error_class": None,
            "attempts": 1,
        },
    ),
    (
        "ModelUpdate",
        "model_updates",
        {
            "version": 3,
            "parent_version": None,
            "feature_schema_version": 1,
            "weights_format": "test/1",
            "weights_bytes": len(b"\x00\x01binary\xff"),
            "trained_samples": 5000,
            "metrics": {"loss": 0.1},
        },
    ),
    (
        "DeadLetter",
        "dead_letters",
        {
            "source_topic": "lodestar.instance-state",
            "source_partition": 0,
            "source_offset": 7,
            "reason": "not UTF-8 JSON",
            "field": None,
            "payload_bytes": 3,
            "payload_head": b"\xff\xfe\x00",
        },
    ),
]


@pytest.mark.parametrize(("event_type", "table", "expected"), CASES, ids=[c[0] for c in CASES])
def test_event_maps_to_its_table_row(
    samples: dict[str, Event], event_type: str, table: str, expected: dict[str, Any]
) -> None:
    event = samples[event_type]
    row = to_row(event, partition=2, offset=41)
    assert row.table == table
    values = dict(zip(COLUMNS[table], row.values, strict=True))
    assert values["event_id"] == event.event_id
    assert values["ts"] == event.ts
    assert values["schema_version"] == 1
    assert values["kafka_partition"] == 2
    assert values["kafka_offset"] == 41
    assert {k: values[k] for k in expected} == expected


def test_every_event_type_has_a_table(events: list[Event]) -> None:
    assert sorted(to_row(e, 0, 0).table for e in events) == sorted(TABLES)


def test_model_update_row_keeps_only_the_weights_size(samples: dict[str, Event]) -> None:
    update = samples["ModelUpdate"]
    values = dict(zip(COLUMNS["model_updates"], to_row(update, 0, 0).values, strict=True))
    assert "weights" not in values
    assert values["weights_sha256"] == update.weights_sha256  # type: ignore[attr-defined]


def test_decision_whose_choice_is_not_a_candidate_has_chosen_index_0() -> None:
    decision = RouteDecision(
        decision_id="x",
        model="m",
        instance_id="elsewhere",
        policy="p",
        prompt_tokens=1,
        candidates=(CandidateRecord(instance_id="a", score=0.5),),
    )
    values = dict(zip(COLUMNS["route_decisions"], to_row(decision, 0, 0).values, strict=True))
    assert (values["chosen_index"], values["chosen_score"], values["chosen_features"]) == (0, None, {})


@pytest.mark.parametrize(
    ("event_type", "update", "field"),
    [
        ("InstanceState", {"num_running": 2**64}, "num_running"),
        ("DeadLetter", {"partition": 2**32}, "partition"),
        ("RequestOutcome", {"attempts": 2**32}, "attempts"),
    ],
    ids=["u64-overflow", "u32-overflow", "attempts-overflow"],
)
def test_values_beyond_their_column_raise_naming_the_field(
    samples: dict[str, Event], event_type: str, update: dict[str, int], field: str
) -> None:
    with pytest.raises(RowMappingError, match=field):
        to_row(samples[event_type].model_copy(update=update), 0, 0)


def test_unstorable_event_becomes_a_dead_letter_with_a_derived_id(samples: dict[str, Event]) -> None:
    event = samples["InstanceState"].model_copy(update={"num_running": 2**64})
    row = unstorable_row(event, "t.lodestar.instance-state", 0, 5, "num_running too big")
    again = unstorable_row(event, "t.lodestar.instance-state", 0, 5, "num_running too big")
    values = dict(zip(COLUMNS["dead_letters"], row.values, strict=True))
    assert row.table == "dead_letters"
    assert values["event_id"] == again.values[0] != event.event_id
    assert isinstance(values["event_id"], uuid.UUID)
    assert values["reason"].startswith("not storable: num_running")
    assert (values["source_topic"], values["source_offset"]) == ("t.lodestar.instance-state", 5)
    assert values["payload_head"].startswith(b"{")
