"""The routing core: decisions recorded in the fleet and published with their features,
feedback to the fleet and to the deciding policy, retries, expiry, swaps, objective."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest
from conftest import MONO_T0, Published
from router_helpers import MODEL, model_update, route_request

from lodestar.learn.blob import ModelState
from lodestar.learn.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from lodestar.learn.objective import Objective
from lodestar.learn.policy import LodestarPolicy
from lodestar.policy.contracts import Decision, InstanceView, NoCandidateError, Outcome, Policy, RequestView
from lodestar_router.dispatch import Dispatcher, NotLearnedError
from lodestar_router.feeds import ModelInstaller
from lodestar_schemas.events import RouteDecision
from lodestar_schemas.router_api import Feedback

NOW = MONO_T0 + 0.5
MakeDispatcher = Callable[..., Dispatcher]


class Recorder(Policy):
    """Picks the healthy candidate with the fewest in-flight requests (first on ties), and
    records its hooks."""

    def __init__(self, name: str = "recorder", bad_feature: bool = False) -> None:
        self.name = name
        self.bad_feature = bad_feature
        self.first_tokens: list[tuple[str, str]] = []
        self.outcomes: list[Outcome] = []

    def decide(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Decision:
        pool = [c for c in candidates if c.healthy]
        if not pool:
            raise NoCandidateError(request.request_id, "all unhealthy")
        chosen = min(pool, key=lambda c: c.inflight_requests)
        load = math.nan if self.bad_feature else 0.0
        return Decision(
            instance_id=chosen.instance_id,
            scores={c.instance_id: 1.0 / (1 + c.inflight_requests) for c in pool},
            policy=self.name,
            propensity=0.5,
            features={c.instance_id: {"inflight": float(c.inflight_requests), "load": load} for c in pool},
            cached_prefix_tokens=16,
        )

    def on_first_token(self, request_id: str, instance_id: str, now_s: float) -> None:
        self.first_tokens.append((request_id, instance_id))

    def on_outcome(self, outcome: Outcome, now_s: float) -> None:
        self.outcomes.append(outcome)


def _fb(kind: str, rid: str = "req-1", iid: str = "a", **fields: object) -> Feedback:
    return Feedback.model_validate({"decision_id": rid, "instance_id": iid, "kind": kind, **fields})


def _inflight(d: Dispatcher, iid: str) -> tuple[int, int, int]:
    view = next(v for v in d.directory.fleet.candidates(MODEL, NOW) if v.instance_id == iid)
    return view.inflight_requests, view.inflight_prefill_requests, view.inflight_prefill_tokens


def test_route_records_dispatch_and_publishes_the_decision(
    make_dispatcher: MakeDispatcher, published: Published
) -> None:
    d = make_dispatcher(policy=Recorder())
    answer = d.route(route_request("req-1", prompt_tokens=64), NOW)
    assert (answer.decision_id, answer.instance_id, answer.url, answer.policy) == (
        "req-1",
        "a",
        "http://a.local:8000",
        "recorder",
    )
    assert _inflight(d, "a") == (1, 1, 64) and d.inflight == 1
    (event,) = published
    assert isinstance(event, RouteDecision)
    assert (event.decision_id, event.instance_id, event.policy, event.propensity) == ("req-1", "a", "recorder", 0.5)
    assert (event.prompt_tokens, event.cached_prefix_tokens) == (64, 16)
    assert [(c.instance_id, c.score, c.features) for c in event.candidates] == [
        ("a", 1.0, {"inflight": 0.0, "load": 0.0}),
        ("b", 1.0, {"inflight": 0.0, "load": 0.0}),
        ("c", 1.0, {"inflight": 0.0, "load": 0.0}),
    ]
    # the next request sees the in-flight accounting
    assert d.route(route_request("req-2"), NOW).instance_id == "b"
    assert 'lodestar_router_decisions_total{instance="a",policy="recorder"} 1.0' in d.metrics.render().decode()


def test_learned_decision_carries_model_version_and_all_features(
    make_dispatcher: MakeDispatcher, published: Published, model_state: Callable[[int], ModelState]
) -> None:
    d = make_dispatcher("lodestar")
    assert d.install_model(model_state(5)) and d.model_version == 5
    answer = d.route(route_request("req-1"), NOW)
    assert (answer.model_version, answer.fallback, answer.policy) == (5, False, "lodestar")
    (event,) = published
    assert isinstance(event, RouteDecision)
    assert (event.model_version, event.feature_schema_version, event.fallback) == (5, FEATURE_SCHEMA_VERSION, False)
    assert 0.0 < event.propensity <= 1.0
    assert [c.instance_id for c in event.candidates] == ["a", "b", "c"]
    for c in event.candidates:
        assert set(FEATURE_NAMES) <= set(c.features)
        assert {"pred.log_ttft_s", "pred.log_ttft_spread"} <= set(c.features)
        assert 0.0 <= c.score <= 1.0


def test_fallback_decision_is_published_with_features(make_dispatcher: MakeDispatcher, published: Published) -> None:
    d = make_dispatcher("lodestar")  # no model yet: the heuristic decides, features are logged
    assert d.route(route_request("req-1"), NOW).fallback
    (event,) = published
    assert isinstance(event, RouteDecision)
    assert event.fallback and event.model_version is None
    assert all(set(FEATURE_NAMES) <= set(c.features) for c in event.candidates)


@pytest.mark.parametrize(
    ("ids", "request_fields", "fragment"),
    [
        pytest.param([], {}, "no instance serves model", id="no-instances"),
        pytest.param(["a"], {"model": "other-model"}, "no instance serves model 'other-model'", id="other-model"),
        pytest.param(["a", "b"], {"exclude": ["a", "b"]}, "excluding a, b", id="all-excluded"),
    ],
)
def test_no_candidate(
    make_dispatcher: MakeDispatcher, ids: list[str], request_fields: dict[str, object], fragment: str
) -> None:
    d = make_dispatcher(ids=ids, policy=Recorder())
    with pytest.raises(NoCandidateError, match=fragment):
        d.route(route_request("req-1", **request_fields), NOW)
    assert "lodestar_router_no_instance_total 1.0" in d.metrics.render().decode()
    assert d.inflight == 0


def test_all_stale_is_no_candidate(make_dispatcher: MakeDispatcher, published: Published) -> None:
    d = make_dispatcher("round-robin")
    with pytest.raises(NoCandidateError):
        d.route(route_request("req-1"), MONO_T0 + 10)  # states are 10 s old: all unhealthy
    assert published == [] and d.inflight == 0


def test_exclude_is_respected(make_dispatcher: MakeDispatcher) -> None:
    d = make_dispatcher(policy=Recorder())
    assert d.route(route_request("req-1", exclude=["a"]), NOW).instance_id == "b"


def test_feedback_updates_fleet_and_policy(make_dispatcher: MakeDispatcher) -> None:
    policy = Recorder()
    d = make_dispatcher(policy=policy)
    d.route(route_request("req-1", prompt_tokens=64), NOW)
    assert d.feedback([_fb("first_token"), _fb("first_token")], NOW + 0.1).applied == 2
    assert _inflight(d, "a") == (1, 0, 0)
    assert policy.first_tokens == [("req-1", "a")]  # the hook sees the first token once
    result = d.feedback([_fb("finished", completion_tokens=9, ttft_s=0.1, tpot_s=0.01, e2e_s=0.2)], NOW + 0.2)
    assert (result.applied, result.unknown, d.inflight) == (1, 0, 0)
    assert _inflight(d, "a") == (0, 0, 0)
    (outcome,) = policy.outcomes
    assert (outcome.decision_id, outcome.instance_id, outcome.prompt_tokens, outcome.completion_tokens) == (
        "req-1",
        "a",
        64,
        9,
    )
    assert (outcome.ttft_s, outcome.tpot_s, outcome.e2e_s, outcome.error) == (0.1, 0.01, 0.2, None)


def test_failed_feedback_without_first_token(make_dispatcher: MakeDispatcher) -> None:
    policy = Recorder()
    d = make_dispatcher(policy=policy)
    d.route(route_request("req-1"), NOW)
    d.feedback([_fb("failed", error="connect_error")], NOW + 2.0)
    assert _inflight(d, "a") == (0, 0, 0)
    (outcome,) = policy.outcomes
    assert (outcome.error, outcome.e2e_s, outcome.ttft_s) == ("connect_error", pytest.approx(2.0), None)


def test_unknown_and_mismatched_feedback_is_ignored_and_counted(make_dispatcher: MakeDispatcher) -> None:
    policy = Recorder()
    d = make_dispatcher(policy=policy)
    d.route(route_request("req-1"), NOW)
    result = d.feedback([_fb("finished", rid="before-restart"), _fb("finished", iid="b")], NOW)
    assert (result.applied, result.unknown, result.mismatched) == (0, 1, 1)
    assert d.inflight == 1 and policy.outcomes == []
    text = d.metrics.render().decode()
    assert 'lodestar_router_feedback_total{kind="finished",outcome="unknown"} 1.0' in text
    assert 'lodestar_router_feedback_total{kind="finished",outcome="mismatched"} 1.0' in text


def test_retry_releases_the_earlier_dispatch(make_dispatcher: MakeDispatcher) -> None:
    policy = Recorder()
    d = make_dispatcher(policy=policy)
    assert d.route(route_request("req-1"), NOW).instance_id == "a"
    assert d.route(route_request("req-1", exclude=["a"]), NOW + 1).instance_id == "b"
    assert _inflight(d, "a") == (0, 0, 0) and _inflight(d, "b")[0] == 1 and d.inflight == 1
    assert [(o.instance_id, o.error) for o in policy.outcomes] == [("a", "retried")]
    assert "lodestar_router_retries_total 1.0" in d.metrics.render().decode()
    # feedback naming the first attempt's instance no longer applies
    assert d.feedback([_fb("failed", iid="a")], NOW + 1).mismatched == 1


def test_expiry_releases_dispatches_without_final_feedback(make_dispatcher: MakeDispatcher) -> None:
    policy = Recorder()
    d = make_dispatcher(policy=policy)
    d.inflight_timeout_s = 10.0
    d.route(route_request("old"), NOW)
    d.route(route_request("young"), NOW + 1.5)
    assert d.expire(NOW + 9) == 0
    assert d.expire(NOW + 10.5) == 1
    assert [(o.decision_id, o.error) for o in policy.outcomes] == [("old", "expired")]
    assert d.inflight == 1 and d.directory.fleet.inflight("old") is None


def test_swap_keeps_fleet_and_feedback_reaches_the_deciding_policy(make_dispatcher: MakeDispatcher) -> None:
    first, second = Recorder("first"), Recorder("second")
    d = make_dispatcher(policy=first)
    d.route(route_request("req-1"), NOW)
    d.swap_policy(second)
    answer = d.route(route_request("req-2"), NOW)
    assert (answer.policy, answer.instance_id) == ("second", "b")  # in-flight accounting kept
    d.feedback([_fb("finished", rid="req-1", iid="a"), _fb("finished", rid="req-2", iid="b")], NOW + 1)
    assert [o.decision_id for o in first.outcomes] == ["req-1"]
    assert [o.decision_id for o in second.outcomes] == ["req-2"]


def test_objective_needs_the_learned_policy(make_dispatcher: MakeDispatcher) -> None:
    d = make_dispatcher("round-robin")
    with pytest.raises(NotLearnedError, match="round-robin"):
        d.set_objective(Objective(ttft=1.0))
    d.swap_policy(make_dispatcher("lodestar").policy)
    d.set_objective(Objective(ttft=0.5, e2e=1.0))
    assert isinstance(d.policy, LodestarPolicy) and d.policy.objective == Objective(ttft=0.5, e2e=1.0)


def test_event_is_built_after_the_answer_when_deferred(make_dispatcher: MakeDispatcher, published: Published) -> None:
    later: list[Callable[[], None]] = []
    d = make_dispatcher(policy=Recorder())
    d.defer = later.append
    d.route(route_request("req-1"), NOW)
    assert published == [] and len(later) == 1
    assert "lodestar_router_decisions_total{" not in d.metrics.render().decode()  # counted with the event
    later[0]()
    assert [e.decision_id for e in published if isinstance(e, RouteDecision)] == ["req-1"]
    assert 'lodestar_router_decisions_total{instance="a",policy="recorder"} 1.0' in d.metrics.render().decode()


def test_invalid_event_is_counted_not_published(make_dispatcher: MakeDispatcher, published: Published) -> None:
    d = make_dispatcher(policy=Recorder(bad_feature=True))
    assert d.route(route_request("req-1"), NOW).instance_id == "a"  # the request is still routed
    assert published == []
    assert "lodestar_router_events_invalid_total 1.0" in d.metrics.render().decode()


async def test_model_installed_by_the_feed_is_used_for_the_next_decision(
    make_dispatcher: MakeDispatcher, published: Published, model_state: Callable[[int], ModelState]
) -> None:
    d = make_dispatcher("lodestar")
    assert d.route(route_request("req-1"), NOW).fallback
    await ModelInstaller(d.models, d).offer(model_update(model_state(7)))
    answer = d.route(route_request("req-2"), NOW)
    assert (answer.model_version, answer.fallback) == (7, False)
