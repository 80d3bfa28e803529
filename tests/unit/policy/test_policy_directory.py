"""Freshness rules of the fleet directory shared by the router and the gateway: stale →
unhealthy, long silence → forgotten, static instances, exclusion, out-of-order and
already-stale states, the admin status."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from lodestar.policy.directory import InstanceDirectory
from lodestar.policy.fleet import FleetState
from lodestar_schemas.events import InstanceState

MODEL = "llama-3-8b"
T0 = 500.0  # host (monotonic) time at which states are received
T0_WALL = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _state(
    iid: str,
    *,
    age_s: float = 0.0,
    now_wall: datetime = T0_WALL,
    model: str = MODEL,
    healthy: bool = True,
    running: int = 0,
    waiting: int = 0,
    kv: float = 0.0,
    max_model_len: int | None = 32_768,
    num_gpu_blocks: int | None = None,
) -> InstanceState:
    return InstanceState(
        ts=now_wall - timedelta(seconds=age_s),
        instance_id=iid,
        url=f"http://{iid}.local:8000",
        model=model,
        hardware="H100-SXM",
        num_running=running,
        num_waiting=waiting,
        kv_usage_frac=kv,
        max_model_len=max_model_len,
        healthy=healthy,
        scrape_latency_s=0.001,
        num_gpu_blocks=num_gpu_blocks,
    )


def _directory() -> InstanceDirectory:
    return InstanceDirectory(FleetState(), staleness_s=2.0, remove_after_s=30.0)


@pytest.mark.parametrize(
    ("state_age_s", "later_s", "scrape_healthy", "healthy"),
    [
        pytest.param(0.0, 0.0, True, True, id="fresh"),
        pytest.param(0.0, 1.9, True, True, id="just-inside"),
        pytest.param(0.0, 2.1, True, False, id="stale-after-2s"),
        pytest.param(1.5, 0.6, True, False, id="arrived-old-then-aged"),
        pytest.param(0.0, 0.0, False, False, id="scrape-says-unhealthy"),
        pytest.param(3.0, 0.0, True, False, id="arrived-stale"),
    ],
)
def test_staleness_marks_unhealthy(state_age_s: float, later_s: float, scrape_healthy: bool, healthy: bool) -> None:
    d = _directory()
    d.apply(_state("a", age_s=state_age_s, healthy=scrape_healthy), T0, T0_WALL.timestamp())
    (view,) = d.candidates(MODEL, T0 + later_s)
    assert view.healthy is healthy
    assert view.state_age_s == pytest.approx(state_age_s + later_s)
    assert d.healthy_count(T0 + later_s) == int(healthy)


def test_state_age_uses_the_event_timestamp_and_counts_stale_arrivals() -> None:
    d = _directory()
    d.apply(_state("a", age_s=5.0), T0, T0_WALL.timestamp())
    assert d.states_arrived_stale == 1
    # a timestamp in the future (clock skew) counts as age 0, never negative
    d.apply(_state("b", age_s=-3.0), T0, T0_WALL.timestamp())
    views = {v.instance_id: v for v in d.candidates(MODEL, T0)}
    assert views["a"].state_age_s == pytest.approx(5.0)
    assert views["b"].state_age_s == 0.0


def test_older_state_does_not_replace_a_newer_one() -> None:
    d = _directory()
    d.apply(_state("a", running=7), T0, T0_WALL.timestamp())
    assert not d.apply(_state("a", age_s=1.0, running=1), T0 + 0.1, T0_WALL.timestamp() + 0.1)
    (view,) = d.candidates(MODEL, T0 + 0.2)
    assert view.num_running == 7
    assert (d.states_applied, d.states_out_of_order) == (1, 1)


def test_state_fields_reach_the_fleet_the_entry_and_the_url_map() -> None:
    d = _directory()
    d.apply(_state("a", running=3, waiting=2, kv=0.4, max_model_len=4096), T0, T0_WALL.timestamp())
    (view,) = d.candidates(MODEL, T0)
    assert (view.num_running, view.num_waiting, view.kv_usage_frac, view.max_model_len) == (3, 2, 0.4, 4096)
    (entry,) = d.entries()
    assert (entry.url, entry.model, entry.max_model_len, entry.hardware) == (
        "http://a.local:8000",
        MODEL,
        4096,
        "H100-SXM",
    )
    assert d.url("a") == "http://a.local:8000" and "a" in d
    assert d.url("zz") is None and "zz" not in d


def test_static_instance_never_scraped_is_healthy_and_never_removed() -> None:
    d = _directory()
    d.add_static("s", "http://s:1", MODEL, 4096)
    (view,) = d.candidates(MODEL, T0 + 1000)
    assert view.healthy and math.isinf(view.state_age_s) and view.max_model_len == 4096
    assert d.healthy_count(T0 + 1000) == 1
    assert d.sweep(T0 + 10_000) == []
    assert d.url("s") == "http://s:1"


def test_static_instance_once_scraped_follows_staleness() -> None:
    d = _directory()
    d.add_static("a", "http://a:1", MODEL)
    d.apply(_state("a"), T0, T0_WALL.timestamp())
    assert not d.candidates(MODEL, T0 + 5)[0].healthy
    assert d.sweep(T0 + 100) == []  # static: kept


def test_sweep_forgets_silent_instances_with_their_inflight() -> None:
    d = _directory()
    d.apply(_state("a"), T0, T0_WALL.timestamp())
    d.apply(_state("b", now_wall=T0_WALL + timedelta(seconds=20)), T0 + 20, T0_WALL.timestamp() + 20)
    d.fleet.on_dispatch("r1", "a", 100, T0 + 1)
    assert d.sweep(T0 + 29) == []
    assert d.sweep(T0 + 31) == ["a"]
    assert [v.instance_id for v in d.candidates(MODEL, T0 + 31)] == ["b"]
    assert d.fleet.inflight("r1") is None
    assert d.url("a") is None and len(d) == 1


def test_candidates_filter_by_model_and_exclude() -> None:
    d = _directory()
    for iid in ("a", "b", "c"):
        d.apply(_state(iid), T0, T0_WALL.timestamp())
    d.apply(_state("x", model="other"), T0, T0_WALL.timestamp())
    assert [v.instance_id for v in d.candidates(MODEL, T0, exclude=["b"])] == ["a", "c"]
    assert [v.instance_id for v in d.candidates("other", T0)] == ["x"]
    assert d.candidates("none", T0) == []


def test_status_for_the_admin_view() -> None:
    d = _directory()
    d.add_static("s", "http://s:1", MODEL)
    d.apply(_state("a", running=2), T0, T0_WALL.timestamp())
    status = {s.instance_id: s for s in d.status(T0 + 3)}
    assert status["a"].stale and not status["a"].healthy and status["a"].age_s == pytest.approx(3.0)
    assert status["a"].view is not None and status["a"].view.num_running == 2
    assert status["a"].hardware == "H100-SXM"
    assert status["s"].static and status["s"].healthy and status["s"].age_s is None


@pytest.mark.parametrize(("staleness_s", "remove_after_s"), [(5.0, 5.0), (0.0, 5.0), (6.0, 5.0)])
def test_staleness_must_be_positive_and_below_removal(staleness_s: float, remove_after_s: float) -> None:
    with pytest.raises(ValueError, match="staleness_s"):
        InstanceDirectory(FleetState(), staleness_s=staleness_s, remove_after_s=remove_after_s)


def test_the_engines_kv_size_reaches_the_candidates_and_survives_a_scrape_without_it() -> None:
    d = _directory()
    d.apply(_state("a", num_gpu_blocks=27_000), T0, T0_WALL.timestamp())
    assert d.candidates(MODEL, T0)[0].kv_capacity_blocks == 27_000
    d.apply(_state("a", age_s=-1.0), T0 + 1.0, T0_WALL.timestamp() + 1.0)  # this scrape lacks the size
    assert d.candidates(MODEL, T0 + 1.0)[0].kv_capacity_blocks == 27_000
