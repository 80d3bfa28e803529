"""Pure mappings: RouteRequest → RequestView, Decision → RouteDecision, Feedback → Outcome."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from router_helpers import MODEL, route_request

from lodestar.policy.contracts import Decision, InstanceView, RequestView
from lodestar_router.mapping import decision_event, outcome_of, request_view, route_response
from lodestar_schemas.router_api import Feedback

TS = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param({}, RequestView("req-1", MODEL, 64, (11, 22, 33, 44), 16), id="full"),
        pytest.param(
            {"block_hashes": [], "expected_output_tokens": None},
            RequestView("req-1", MODEL, 64, (), None),
            id="no-blocks-no-output",
        ),
        pytest.param(
            {"tenant": "acme", "session_id": "s-9", "block_hashes": [2**64 - 1]},
            RequestView("req-1", MODEL, 64, (2**64 - 1,), 16, "acme", "s-9"),
            id="tenant-session-u64",
        ),
    ],
)
def test_request_view(overrides: dict[str, object], expected: RequestView) -> None:
    assert request_view(route_request(**overrides)) == expected


def _view() -> RequestView:
    return RequestView("req-7", MODEL, 100, (1, 2, 3), 20)


def _candidates(*ids: str) -> list[InstanceView]:
    return [InstanceView(i, MODEL) for i in ids]


def test_decision_event_carries_scores_features_and_propensity() -> None:
    decision = Decision(
        instance_id="b",
        scores={"a": 0.25, "b": 0.9},
        policy="lodestar",
        propensity=0.8,
        explore=True,
        fallback=False,
        model_version=4,
        feature_schema_version=2,
        features={"a": {"queue": 3.0, "kv": 0.5}, "b": {"queue": 1.0, "kv": 0.1}},
        cached_prefix_tokens=32,
    )
    event = decision_event(_view(), decision, _candidates("a", "b", "c"), TS)
    assert (event.decision_id, event.instance_id, event.model, event.policy) == ("req-7", "b", MODEL, "lodestar")
    assert (event.model_version, event.feature_schema_version, event.prompt_tokens) == (4, 2, 100)
    assert (event.explore, event.fallback, event.propensity, event.cached_prefix_tokens) == (True, False, 0.8, 32)
    assert event.ts == TS
    # "c" was filtered out by the policy (no score, no features): not a candidate it chose among
    assert [(c.instance_id, c.score, c.features) for c in event.candidates] == [
        ("a", 0.25, {"queue": 3.0, "kv": 0.5}),
        ("b", 0.9, {"queue": 1.0, "kv": 0.1}),
    ]


@pytest.mark.parametrize(
    ("cached", "expected"),
    [pytest.param(-5, 0, id="negative"), pytest.param(40, 40, id="inside"), pytest.param(500, 100, id="over-prompt")],
)
def test_cached_prefix_is_clamped_to_the_prompt(cached: int, expected: int) -> None:
    decision = Decision("a", {"a": 1.0}, "p", cached_prefix_tokens=cached)
    assert decision_event(_view(), decision, _candidates("a"), TS).cached_prefix_tokens == expected


def test_chosen_candidate_is_recorded_even_without_score() -> None:
    decision = Decision("b", {}, "random")
    event = decision_event(_view(), decision, _candidates("a", "b"), TS)
    assert [(c.instance_id, c.score) for c in event.candidates] == [("b", 0.0)]


def test_non_finite_features_are_refused() -> None:
    decision = Decision("a", {"a": 1.0}, "p", features={"a": {"x": math.nan}})
    with pytest.raises(ValidationError, match="non-finite"):
        decision_event(_view(), decision, _candidates("a"), TS)


def test_route_response() -> None:
    decision = Decision("b", {"b": 1.0}, "lodestar", model_version=3, fallback=True, explore=False)
    answer = route_response(_view(), decision, "http://b:8000")
    assert answer.model_dump() == {
        "decision_id": "req-7",
        "instance_id": "b",
        "url": "http://b:8000",
        "policy": "lodestar",
        "model_version": 3,
        "fallback": True,
        "explore": False,
    }


@pytest.mark.parametrize(
    ("feedback", "expected"),
    [
        pytest.param(
            {
                "kind": "finished",
                "prompt_tokens": 90,
                "completion_tokens": 7,
                "ttft_s": 0.1,
                "tpot_s": 0.02,
                "e2e_s": 0.3,
            },
            (90, 7, 0.1, 0.02, 0.3, None),
            id="finished",
        ),
        pytest.param({"kind": "finished"}, (100, 0, None, None, 1.5, None), id="finished-defaults"),
        pytest.param(
            {"kind": "failed", "error": "upstream_503"}, (100, 0, None, None, 1.5, "upstream_503"), id="failed"
        ),
        pytest.param({"kind": "failed"}, (100, 0, None, None, 1.5, "failed"), id="failed-no-reason"),
    ],
)
def test_outcome_of(feedback: dict[str, object], expected: tuple[object, ...]) -> None:
    fb = Feedback.model_validate({"decision_id": "req-7", "instance_id": "b", **feedback})
    out = outcome_of(fb, prompt_tokens=100, elapsed_s=1.5)
    assert (out.decision_id, out.instance_id) == ("req-7", "b")
    assert (out.prompt_tokens, out.completion_tokens, out.ttft_s, out.tpot_s, out.e2e_s, out.error) == expected
