"""Faults through the shared instance directory (what the gateway and the router both run).

Outlier ejection: a failure that blames the instance ejects it, policies are offered it as
unhealthy and never pick it, it is readmitted after its backoff once a scrape taken since says
healthy; failures that do not blame the instance, unknown instances and forgotten ones change
nothing. A silent feed (broker or collector down): the last states stand, nothing is forgotten,
ejected instances come back when their backoff ends; one silent instance still goes stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lodestar.plugins import full_registry, resolve_profile
from lodestar.policy.contracts import RequestView
from lodestar.policy.directory import InstanceDirectory
from lodestar.policy.ejection import EjectionPolicy
from lodestar.policy.fleet import FleetState
from lodestar.policy.profile_spec import build_policy
from lodestar_schemas.events import InstanceState

MODEL = "llama-3-8b"
T0 = 500.0
T0_WALL = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
A, B = "a10g-0", "h100-0"


def _state(iid: str, at_s: float, healthy: bool = True) -> InstanceState:
    """A state taken at host time ``at_s`` (the wall clock runs in step with T0)."""
    return InstanceState(
        ts=T0_WALL + timedelta(seconds=at_s - T0),
        instance_id=iid,
        url=f"http://{iid}.local:8000",
        model=MODEL,
        hardware="A10G",
        num_running=0,
        num_waiting=0,
        kv_usage_frac=0.0,
        max_model_len=32_768,
        healthy=healthy,
        scrape_latency_s=0.001,
    )


def _apply(d: InstanceDirectory, iid: str, at_s: float, healthy: bool = True) -> None:
    assert d.apply(_state(iid, at_s, healthy), at_s, (T0_WALL + timedelta(seconds=at_s - T0)).timestamp())


def _directory(base_s: float = 1.0, hold: bool = False) -> InstanceDirectory:
    ejection = EjectionPolicy(base_s=base_s)
    d = InstanceDirectory(FleetState(), staleness_s=2.0, remove_after_s=30.0, ejection=ejection, hold_when_silent=hold)
    _apply(d, A, T0)
    _apply(d, B, T0)
    return d


def _healthy(d: InstanceDirectory, now_s: float) -> dict[str, bool]:
    return {v.instance_id: v.healthy for v in d.candidates(MODEL, now_s)}


@pytest.mark.parametrize(
    "error_class", ["upstream_connect", "upstream_disconnected", "upstream_incomplete", "first_token_timeout"]
)
def test_a_failure_that_blames_the_instance_ejects_it_until_a_fresh_healthy_scrape(error_class: str) -> None:
    d = _directory()
    assert d.report(A, error_class, T0 + 0.1) == 1.0
    assert _healthy(d, T0 + 0.2) == {A: False, B: True}
    assert d.healthy_count(T0 + 0.2) == 1 and d.ejected_ids(T0 + 0.2) == [A]
    assert [s.ejected for s in d.status(T0 + 0.2)] == [True, False]
    # backoff over, but the only scrape was taken before the ejection
    assert _healthy(d, T0 + 1.5)[A] is False
    # a scrape taken after the ejection that says unhealthy does not readmit it either
    _apply(d, A, T0 + 1.6, healthy=False)
    assert _healthy(d, T0 + 1.7)[A] is False
    _apply(d, A, T0 + 1.8)
    assert _healthy(d, T0 + 1.9) == {A: True, B: True}
    assert d.ejected_ids(T0 + 1.9) == [] and d.ejections.counters.readmissions == 1


@pytest.mark.parametrize(
    "error_class", ["upstream_400", "upstream_429", "client_disconnected", "internal:KeyError", "retried"]
)
def test_errors_that_do_not_blame_the_instance_change_nothing(error_class: str) -> None:
    d = _directory()
    assert d.report(A, error_class, T0) is None
    assert _healthy(d, T0) == {A: True, B: True}


def test_unknown_instances_are_ignored_and_forgotten_ones_lose_their_ejection() -> None:
    d = _directory()
    assert d.report("nobody", "upstream_connect", T0) is None
    assert d.report(A, "upstream_connect", T0) is not None
    assert d.ejections.ejected_count() == 1
    _apply(d, B, T0 + 31.0)
    assert d.sweep(T0 + 31.0) == [A]
    assert d.ejections.ejected_count() == 0


def test_a_run_of_server_errors_ejects_and_a_success_breaks_the_run() -> None:
    d = _directory()
    for _ in range(4):
        assert d.report(A, "upstream_500", T0) is None
    d.report(A, None, T0)
    for _ in range(4):
        assert d.report(A, "upstream_503", T0) is None
    assert d.report(A, "upstream_stream_error", T0) == 1.0
    assert _healthy(d, T0)[A] is False


def test_repeated_ejections_back_off_longer() -> None:
    d = _directory(base_s=2.0)
    assert d.report(A, "upstream_connect", T0) == 2.0
    _apply(d, A, T0 + 2.5)
    assert _healthy(d, T0 + 2.6)[A] is True
    assert d.report(A, "upstream_connect", T0 + 3.0) == 4.0
    _apply(d, A, T0 + 6.5)
    assert _healthy(d, T0 + 6.9)[A] is False
    assert _healthy(d, T0 + 7.1)[A] is True


def test_a_static_instance_never_scraped_is_readmitted_when_its_backoff_ends() -> None:
    d = InstanceDirectory(FleetState(), ejection=EjectionPolicy(base_s=1.0))
    d.add_static(A, "http://a:8000", MODEL)
    d.report(A, "upstream_connect", T0)
    assert _healthy(d, T0 + 0.5)[A] is False
    assert _healthy(d, T0 + 1.01)[A] is True


def test_no_shipped_policy_picks_an_ejected_instance() -> None:
    d = _directory()
    d.report(B, "idle_timeout", T0)
    registry = full_registry()
    for profile in ("least-request", "round-robin", "random", "llm-d", "lodestar"):
        policy = build_policy(resolve_profile(profile), registry, seed=1)
        for k in range(20):
            view = RequestView(request_id=f"{profile}-{k}", model=MODEL, prompt_tokens=100 + k)
            decision = policy.decide(view, d.candidates(MODEL, T0 + 0.1), T0 + 0.1)
            assert decision.instance_id == A, profile


@pytest.mark.parametrize(
    ("hold", "later_s", "healthy", "swept"),
    [
        pytest.param(True, 5.0, True, False, id="held-5s"),
        pytest.param(True, 100.0, True, False, id="held-past-remove-after"),
        pytest.param(False, 5.0, False, False, id="not-held-stale"),
        pytest.param(False, 100.0, False, True, id="not-held-forgotten"),
    ],
)
def test_a_silent_feed_keeps_the_last_states_when_held(hold: bool, later_s: float, healthy: bool, swept: bool) -> None:
    d = _directory(hold=hold)
    now = T0 + later_s
    assert d.feed_silent(now) is hold
    assert _healthy(d, now) == {A: healthy, B: healthy}
    assert d.healthy_count(now) == 2 * int(healthy)
    assert sorted(d.sweep(now)) == ([A, B] if swept else [])


def test_one_silent_instance_still_goes_stale_while_others_report() -> None:
    d = _directory(hold=True)
    _apply(d, B, T0 + 4.0)
    assert not d.feed_silent(T0 + 4.5)
    assert _healthy(d, T0 + 4.5) == {A: False, B: True}
    _apply(d, B, T0 + 40.0)
    assert d.sweep(T0 + 40.0) == [A]


def test_while_the_feed_is_silent_the_backoff_alone_readmits() -> None:
    d = _directory(base_s=0.5, hold=True)
    assert d.report(A, "upstream_connect", T0 + 3.0) == 0.5
    assert _healthy(d, T0 + 3.2) == {A: False, B: True}
    assert _healthy(d, T0 + 3.6) == {A: True, B: True}
    # once states flow again, a readmission waits for a healthy scrape taken after the ejection
    _apply(d, A, T0 + 4.9)
    _apply(d, B, T0 + 4.9)
    assert d.report(A, "upstream_connect", T0 + 5.0) == 1.0  # a repeat: doubled
    _apply(d, B, T0 + 6.0)
    assert _healthy(d, T0 + 6.5) == {A: False, B: True}
    _apply(d, A, T0 + 6.6)
    assert _healthy(d, T0 + 6.7) == {A: True, B: True}


def _fleet(ids: list[str], fraction: float, model: str = MODEL) -> InstanceDirectory:
    d = InstanceDirectory(FleetState(), ejection=EjectionPolicy(base_s=1.0, max_ejected_fraction=fraction))
    for iid in ids:
        d.apply(_state(iid, T0).model_copy(update={"model": model}), T0, T0_WALL.timestamp())
    return d


def test_an_overloaded_fleet_missing_every_deadline_keeps_half_its_instances() -> None:
    ids = [f"h100-{k}" for k in range(8)]
    d = _fleet(ids, 0.5)
    backoffs = [d.report(iid, "first_token_timeout", T0 + 0.1) for iid in ids]
    assert backoffs == [1.0] * 4 + [None] * 4
    assert d.healthy_count(T0 + 0.2) == 4 and d.ejected_ids(T0 + 0.2) == ids[:4]
    assert d.ejections.counters.capped == 4
    # once one is readmitted (backoff over, a healthy scrape since), the next failure may eject
    _apply(d, ids[0], T0 + 1.5)
    assert d.report(ids[7], "first_token_timeout", T0 + 1.6) == 1.0
    assert d.ejected_ids(T0 + 1.7) == [*ids[1:4], ids[7]]


def test_the_cap_counts_the_instances_of_the_failing_instances_model_only() -> None:
    d = _fleet(["a-0", "a-1"], 0.5)
    for iid in ("b-0", "b-1"):
        d.apply(_state(iid, T0).model_copy(update={"model": "other"}), T0, T0_WALL.timestamp())
    assert d.report("a-0", "upstream_connect", T0) == 1.0
    assert d.report("a-1", "upstream_connect", T0) is None  # a-0 is out: a-1 must stay
    assert d.report("b-0", "upstream_connect", T0) == 1.0  # the other model's pool has room
    assert d.ejected_ids(T0 + 0.1) == ["a-0", "b-0"]


def test_a_lone_instance_may_still_be_ejected() -> None:
    d = _fleet([A], 0.1)
    assert d.report(A, "upstream_connect", T0) == 1.0
    assert d.ejected_ids(T0 + 0.1) == [A]


def test_an_instance_whose_scrape_says_unhealthy_is_not_offered_whatever_the_cap() -> None:
    d = _fleet([A, B], 0.5)
    assert d.report(A, "upstream_connect", T0) == 1.0
    assert d.report(B, "upstream_connect", T0) is None
    _apply(d, B, T0 + 0.2, healthy=False)
    assert _healthy(d, T0 + 0.3) == {A: False, B: False}


def test_an_overloaded_fleet_serving_others_loses_no_instance_to_first_token_timeouts() -> None:
    """Every instance queues past the first-token deadline but keeps serving: a first token or
    a finished request on each after the timed-out requests were sent. Nothing is ejected."""
    ids = [f"h100-{k}" for k in range(8)]
    d = _fleet(ids, 0.5)
    for k, iid in enumerate(ids):
        if k % 2:
            d.progress(iid, T0 + 60.0)  # another request's first token
        else:
            assert d.report(iid, None, T0 + 60.0) is None  # another request finished
    backoffs = [d.report(iid, "first_token_timeout", T0 + 120.0, silent_since_s=T0) for iid in ids]
    assert backoffs == [None] * 8
    assert d.ejected_ids(T0 + 120.0) == []
    assert d.ejections.counters.spared == 8 and d.ejections.counters.capped == 0


def test_a_hung_instance_is_ejected_while_its_busy_neighbour_is_spared() -> None:
    d = _fleet([A, B], 1.0)
    d.progress(A, T0 - 1.0)  # A's last first token came before the request was sent: hung since
    d.progress(B, T0 + 5.0)
    assert d.report(A, "first_token_timeout", T0 + 120.0, silent_since_s=T0) == 1.0
    assert d.report(B, "first_token_timeout", T0 + 120.0, silent_since_s=T0) is None
    assert d.ejected_ids(T0 + 120.0) == [A]


def test_progress_of_an_unknown_instance_changes_nothing() -> None:
    d = _directory()
    d.progress("nobody", T0)
    assert d.report("nobody", "first_token_timeout", T0 + 1.0, silent_since_s=T0 - 1.0) is None
    assert d.ejections.counters.spared == 0


def test_a_whole_response_deadline_missed_while_tokens_flowed_ejects_nothing() -> None:
    """A long non-streamed answer: tokens came (no ``silent_since_s``) and the idle deadline never
    fired; only the response deadline did. That is the answer's length, not the instance."""
    d = _directory()
    assert d.report(A, "response_timeout", T0 + 600.0) is None
    assert d.ejected_ids(T0 + 600.0) == [] and d.ejections.counters.ejections == 0
    # with nothing received since it was sent, and no progress on the instance, it ejects
    assert d.report(B, "response_timeout", T0 + 600.0, silent_since_s=T0) == 1.0
