"""The gateway's own fleet view: states from the topic, freshness as the router applies it,
static instances, forgetting, models and context limits, in-flight accounting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lodestar_gateway.fleet import LocalFleet, ServedModel
from lodestar_schemas.events import InstanceState

WALL = 1_800_000_000.0


def _state(iid: str, age_s: float = 0.0, model: str = "llama-3-8b", **kw: object) -> InstanceState:
    values: dict[str, object] = {
        "instance_id": iid,
        "url": f"http://{iid}:8000",
        "model": model,
        "num_running": 1,
        "num_waiting": 0,
        "kv_usage_frac": 0.1,
        "healthy": True,
        "scrape_latency_s": 0.001,
        "max_model_len": 8192,
        "ts": datetime.fromtimestamp(WALL - age_s, UTC),
    }
    values.update(kw)
    return InstanceState.model_validate(values)


def test_states_become_candidates_and_go_stale() -> None:
    fleet = LocalFleet(staleness_s=2.0, remove_after_s=30.0)
    assert fleet.apply(_state("a"), now_s=100.0, wall_now_s=WALL)
    assert fleet.apply(_state("b", age_s=1.5), now_s=100.0, wall_now_s=WALL)  # taken 1.5 s ago
    views = {v.instance_id: v for v in fleet.candidates("llama-3-8b", 100.0)}
    assert views["a"].healthy and views["b"].healthy
    later = {v.instance_id: v for v in fleet.candidates("llama-3-8b", 101.0)}
    assert later["a"].healthy and not later["b"].healthy  # b's state is now 2.5 s old
    assert fleet.url("a") == "http://a:8000" and fleet.healthy_count(101.0) == 1


def test_an_older_state_is_ignored_and_unhealthy_states_stay_unhealthy() -> None:
    fleet = LocalFleet()
    fleet.apply(_state("a"), 100.0, WALL)
    assert not fleet.apply(_state("a", age_s=1.0, num_running=9), 100.0, WALL)
    fleet.apply(_state("a", healthy=False), 100.5, WALL + 0.5)
    assert [v.healthy for v in fleet.candidates("llama-3-8b", 100.5)] == [False]


def test_static_instances_are_healthy_until_scraped_and_never_forgotten() -> None:
    fleet = LocalFleet(staleness_s=2.0, remove_after_s=5.0)
    fleet.add_static("s", "http://s:1", "llama-3-8b", 4096)
    fleet.apply(_state("t"), 0.0, WALL)
    assert [v.healthy for v in fleet.candidates("llama-3-8b", 1000.0)] == [True, False]
    assert fleet.sweep(1000.0) == ["t"]
    assert [v.instance_id for v in fleet.candidates("llama-3-8b", 1000.0)] == ["s"]
    assert "t" not in fleet and fleet.url("t") is None


def test_exclude_models_and_context_limits() -> None:
    fleet = LocalFleet()
    fleet.apply(_state("a", max_model_len=8192), 0.0, WALL)
    fleet.apply(_state("b", max_model_len=32768), 0.0, WALL)
    fleet.apply(_state("q", model="qwen", max_model_len=None), 0.0, WALL)
    assert [v.instance_id for v in fleet.candidates("llama-3-8b", 0.0, exclude=["a"])] == ["b"]
    assert fleet.models() == [ServedModel("llama-3-8b", 2, 32768), ServedModel("qwen", 1, None)]
    assert fleet.serves("qwen") and not fleet.serves("gpt-4")
    assert fleet.context_limit("llama-3-8b") == 32768 and fleet.context_limit("qwen") is None


def test_accounting_counts_every_forwarded_request_and_ignores_unknown_instances() -> None:
    fleet = LocalFleet()
    fleet.apply(_state("a"), 0.0, WALL)
    fleet.on_dispatch("r1", "a", 100, 0.0)
    fleet.on_dispatch("r2", "elsewhere", 100, 0.0)  # routed by the router to one we do not know
    (view,) = fleet.candidates("llama-3-8b", 0.0)
    assert (view.inflight_requests, view.inflight_prefill_tokens) == (1, 100)
    fleet.on_first_token("r1", 0.1)
    fleet.on_first_token("r2", 0.1)
    (view,) = fleet.candidates("llama-3-8b", 0.1)
    assert (view.inflight_requests, view.inflight_prefill_requests) == (1, 0)
    fleet.on_finish("r1", 0.2)
    fleet.on_finish("r2", 0.2)
    (view,) = fleet.candidates("llama-3-8b", 0.2)
    assert view.inflight_requests == 0


def test_bad_freshness_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="staleness_s"):
        LocalFleet(staleness_s=5.0, remove_after_s=5.0)


def test_clock_skew_is_taken_from_the_state_timestamp() -> None:
    fleet = LocalFleet(staleness_s=2.0, remove_after_s=30.0)
    fleet.apply(_state("a", ts=datetime.fromtimestamp(WALL, UTC) - timedelta(seconds=3)), 50.0, WALL)
    assert not fleet.candidates("llama-3-8b", 50.0)[0].healthy  # arrived already stale
