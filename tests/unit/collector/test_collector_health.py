"""The per-instance health state machine, driven by sequences of scrape outcomes."""

from __future__ import annotations

import pytest

from lodestar_collector.health import HealthTracker, Transition

OK, FAIL = "ok", "fail"

# (outcomes, threshold, expected (healthy, consecutive_failures, needs_model_info) after each step)
CASES = [
    pytest.param([OK], 3, [(True, 0, True)], id="join-then-healthy"),
    pytest.param(
        [OK, FAIL, FAIL, FAIL, FAIL],
        3,
        [(True, 0, True), (True, 1, True), (True, 2, True), (False, 3, True), (False, 4, True)],
        id="unhealthy-at-threshold",
    ),
    pytest.param(
        [OK, FAIL, FAIL, OK, FAIL, FAIL],
        3,
        [(True, 0, True), (True, 1, True), (True, 2, True), (True, 0, True), (True, 1, True), (True, 2, True)],
        id="success-resets-the-count",
    ),
    pytest.param(
        [FAIL, FAIL, OK], 2, [(False, 1, True), (False, 2, True), (True, 0, True)], id="joining-never-healthy-until-ok"
    ),
    pytest.param([OK, FAIL], 1, [(True, 0, True), (False, 1, True)], id="threshold-one"),
]


@pytest.mark.parametrize(("outcomes", "threshold", "expected"), CASES)
def test_state_machine(outcomes: list[str], threshold: int, expected: list[tuple[bool, int, bool]]) -> None:
    tracker = HealthTracker(threshold)
    got = []
    for outcome in outcomes:
        tracker.success() if outcome == OK else tracker.failure()
        got.append((tracker.healthy, tracker.consecutive_failures, tracker.needs_model_info))
    assert got == expected


def test_transitions_are_reported_once() -> None:
    tracker = HealthTracker(2)
    assert tracker.success() is Transition.BECAME_HEALTHY
    assert tracker.success() is Transition.NONE
    assert tracker.failure() is Transition.NONE
    assert tracker.failure() is Transition.BECAME_UNHEALTHY
    assert tracker.failure() is Transition.NONE
    assert tracker.success() is Transition.BECAME_HEALTHY


def test_model_info_is_needed_again_after_unhealthy() -> None:
    tracker = HealthTracker(1)
    tracker.success()
    tracker.model_info_read()
    assert not tracker.needs_model_info
    tracker.failure()
    assert tracker.needs_model_info


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError, match="threshold"):
        HealthTracker(0)
