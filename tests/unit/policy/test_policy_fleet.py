"""FleetState accounting: dispatch, first token, finish, unknown ids, idempotence, views."""

from __future__ import annotations

import math

import pytest

from lodestar.policy.fleet import FleetState


def _fleet() -> FleetState:
    fleet = FleetState()
    fleet.upsert_instance("b", "m", max_model_len=4096)
    fleet.upsert_instance("a", "m")
    fleet.upsert_instance("z", "other")
    return fleet


def _view(fleet: FleetState, iid: str, now: float = 0.0):  # type: ignore[no-untyped-def]
    return next(v for v in fleet.candidates("m", now) if v.instance_id == iid)


def test_candidates_are_sorted_filtered_by_model_and_never_scraped_is_infinitely_old() -> None:
    fleet = _fleet()
    views = fleet.candidates("m", 5.0)
    assert [v.instance_id for v in views] == ["a", "b"]
    assert views[1].max_model_len == 4096 and views[0].max_model_len is None
    assert all(math.isinf(v.state_age_s) and v.healthy for v in views)


def test_scrape_sets_state_and_age() -> None:
    fleet = _fleet()
    assert fleet.update_scrape(
        "a", num_running=3, num_waiting=2, kv_usage_frac=0.4, prefix_hit_rate=0.5, healthy=False, at_s=10.0
    )
    v = _view(fleet, "a", 12.5)
    assert (v.num_running, v.num_waiting, v.kv_usage_frac, v.prefix_hit_rate, v.healthy) == (3, 2, 0.4, 0.5, False)
    assert v.state_age_s == 2.5
    assert not fleet.update_scrape(
        "ghost", num_running=0, num_waiting=0, kv_usage_frac=0, prefix_hit_rate=None, healthy=True, at_s=1.0
    )


@pytest.mark.parametrize(
    ("case", "events", "expected"),
    [
        # expected (inflight_requests, inflight_prefill_requests, inflight_prefill_tokens) on "a"
        ("dispatch", [("d", "r1", 100)], (1, 1, 100)),
        ("two-dispatches", [("d", "r1", 100), ("d", "r2", 50)], (2, 2, 150)),
        ("first-token", [("d", "r1", 100), ("f", "r1")], (1, 0, 0)),
        ("first-token-twice", [("d", "r1", 100), ("f", "r1"), ("f", "r1")], (1, 0, 0)),
        ("finish-after-first", [("d", "r1", 100), ("f", "r1"), ("x", "r1")], (0, 0, 0)),
        ("finish-without-first", [("d", "r1", 100), ("d", "r2", 7), ("x", "r1")], (1, 1, 7)),
        ("finish-twice", [("d", "r1", 100), ("x", "r1"), ("x", "r1")], (0, 0, 0)),
        ("first-token-after-finish", [("d", "r1", 100), ("x", "r1"), ("f", "r1")], (0, 0, 0)),
        ("unknown-ids", [("d", "r1", 100), ("f", "ghost"), ("x", "ghost")], (1, 1, 100)),
        ("redispatch-moves", [("d", "r1", 100), ("d", "r1", 40)], (1, 1, 40)),
    ],
)
def test_accounting(case: str, events: list[tuple[str, ...]], expected: tuple[int, int, int]) -> None:
    fleet = _fleet()
    for t, (kind, rid, *rest) in enumerate(events):
        if kind == "d":
            fleet.on_dispatch(rid, "a", int(rest[0]), float(t))
        elif kind == "f":
            fleet.on_first_token(rid, float(t))
        else:
            fleet.on_finish(rid, float(t))
    v = _view(fleet, "a")
    assert (v.inflight_requests, v.inflight_prefill_requests, v.inflight_prefill_tokens) == expected


def test_redispatch_to_another_instance_moves_the_accounting() -> None:
    fleet = _fleet()
    fleet.on_dispatch("r1", "a", 100, 0.0)
    fleet.on_dispatch("r1", "b", 100, 1.0)
    assert _view(fleet, "a").inflight_requests == 0
    assert _view(fleet, "b").inflight_prefill_tokens == 100
    assert fleet.inflight("r1") == "b"


def test_dispatch_to_unknown_instance_and_bad_tokens_fail() -> None:
    fleet = _fleet()
    with pytest.raises(KeyError, match="unknown instance 'ghost'"):
        fleet.on_dispatch("r1", "ghost", 10, 0.0)
    with pytest.raises(ValueError, match="prompt_tokens"):
        fleet.on_dispatch("r1", "a", -1, 0.0)
    with pytest.raises(ValueError, match="max_model_len"):
        fleet.upsert_instance("c", "m", max_model_len=0)


def test_upsert_keeps_state_and_remove_forgets_inflight_requests() -> None:
    fleet = _fleet()
    fleet.on_dispatch("r1", "a", 100, 0.0)
    fleet.upsert_instance("a", "m", max_model_len=2048)
    v = _view(fleet, "a")
    assert v.inflight_requests == 1 and v.max_model_len == 2048
    fleet.remove_instance("a")
    assert [v.instance_id for v in fleet.candidates("m", 0.0)] == ["b"]
    fleet.on_finish("r1", 1.0)  # the request was forgotten with its instance: ignored
    fleet.upsert_instance("a", "m")
    assert _view(fleet, "a").inflight_requests == 0
    fleet.remove_instance("never-there")
