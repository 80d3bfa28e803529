"""Decision ⋈ outcome join of the trainer: either order, duplicates, skips, expiry."""

from __future__ import annotations

import math

import pytest

from lodestar.learn.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from lodestar_schemas.events import CandidateRecord, RequestOutcome, RouteDecision
from lodestar_trainer.join import DecisionOutcomeJoin


def _features(base: float) -> dict[str, float]:
    return {name: base + i for i, name in enumerate(FEATURE_NAMES)}


def decision(rid: str = "r1", chosen: str = "a", schema: int | None = FEATURE_SCHEMA_VERSION) -> RouteDecision:
    return RouteDecision(
        decision_id=rid,
        model="m",
        instance_id=chosen,
        policy="lodestar",
        feature_schema_version=schema,
        prompt_tokens=100,
        candidates=(
            CandidateRecord(instance_id="a", score=1.0, features=_features(0.0)),
            CandidateRecord(instance_id="b", score=0.5, features=_features(100.0)),
        ),
    )


def outcome(rid: str = "r1", instance: str = "a", status: str = "ok", ttft: float | None = 0.5) -> RequestOutcome:
    return RequestOutcome(
        request_id=rid,
        decision_id=rid,
        model="m",
        instance_id=instance,
        stream=True,
        prompt_tokens=100,
        completion_tokens=10,
        ttft_s=ttft,
        tpot_s=0.02,
        e2e_s=0.7,
        status=status,  # type: ignore[arg-type]
        http_status=200 if status == "ok" else 500,
    )


@pytest.mark.parametrize("decision_first", [True, False])
def test_pairs_in_either_order_give_the_chosen_candidates_features(decision_first: bool) -> None:
    join = DecisionOutcomeJoin(window_s=60)
    first = (
        join.add_decision(decision(chosen="b"), 1.0) if decision_first else join.add_outcome(outcome(instance="b"), 1.0)
    )
    assert first is None and join.pending == 1
    sample = (
        join.add_outcome(outcome(instance="b"), 2.0) if decision_first else join.add_decision(decision(chosen="b"), 2.0)
    )
    assert sample is not None and join.pending == 0
    assert sample.x.tolist() == [100.0 + i for i in range(len(FEATURE_NAMES))]
    assert sample.y.tolist() == pytest.approx([math.log(0.5), math.log(0.02), math.log(0.7)])
    assert join.stats.joined == 1


@pytest.mark.parametrize(
    ("case", "d", "o", "reason"),
    [
        ("other feature schema", decision(schema=FEATURE_SCHEMA_VERSION + 1), outcome(), "other_schema"),
        ("no feature schema (baseline policy)", decision(schema=None), outcome(), "other_schema"),
        ("failed request", decision(), outcome(status="error", ttft=None), "failed"),
        ("no first token", decision(), outcome(ttft=None), "failed"),
    ],
)
def test_unusable_pairs_are_skipped_and_counted(case: str, d: RouteDecision, o: RequestOutcome, reason: str) -> None:
    join = DecisionOutcomeJoin(window_s=60)
    assert join.add_decision(d, 0.0) is None
    assert join.add_outcome(o, 0.0) is None, case
    assert getattr(join.stats, reason) == 1 and join.stats.joined == 0


def test_missing_feature_skips_the_pair() -> None:
    d = decision()
    partial = d.model_copy(update={"candidates": (CandidateRecord(instance_id="a", score=1.0, features={"x": 1.0}),)})
    join = DecisionOutcomeJoin(window_s=60)
    join.add_decision(partial, 0.0)
    assert join.add_outcome(outcome(), 0.0) is None
    assert join.stats.other_schema == 1


def test_duplicates_from_at_least_once_delivery_are_ignored() -> None:
    join = DecisionOutcomeJoin(window_s=60)
    join.add_decision(decision(), 0.0)
    join.add_decision(decision(), 0.1)
    assert join.add_outcome(outcome(), 0.2) is not None
    assert join.add_outcome(outcome(), 0.3) is None
    assert join.add_decision(decision(), 0.4) is None
    assert join.stats.duplicates == 3 and join.stats.joined == 1


def test_unmatched_entries_expire_after_the_window_and_pending_is_bounded() -> None:
    join = DecisionOutcomeJoin(window_s=10, max_pending=100)
    join.add_decision(decision("old"), 0.0)
    join.add_outcome(outcome("new"), 8.0)
    assert join.expire(12.0) == 1 and join.pending == 1
    assert join.add_outcome(outcome("old"), 12.5) is None  # its decision is gone
    for k in range(150):
        join.add_decision(decision(f"d{k}"), 13.0)
    assert join.pending <= 2 * 100
    assert join.stats.expired >= 1 + 50


def test_a_retried_request_pairs_with_the_attempt_that_served_it() -> None:
    join = DecisionOutcomeJoin(window_s=60)
    assert join.add_decision(decision(chosen="a"), 0.0) is None  # first attempt: connection refused
    assert join.add_decision(decision(chosen="b"), 0.1) is None  # retried on b, same decision id
    sample = join.add_outcome(outcome(instance="b"), 1.0)
    assert sample is not None and sample.x[0] == 100.0  # b's features
    assert join.stats.duplicates == 0 and join.pending == 1  # a's attempt waits, then expires
    assert join.expire(100.0) == 1
