"""Outlier ejection state machine: which failures eject, the doubling capped backoff, the reset
after a quiet period, readmission only with a healthy scrape taken after the ejection, failures
while ejected ignored, 5xx runs, forgetting, and the error-class mapping."""

from __future__ import annotations

import pytest

from lodestar.policy.ejection import EjectionPolicy, Ejections, FailureKind, classify

T0 = 1000.0
A = "a10g-0"


def _ejections(**kw: float) -> Ejections:
    return Ejections(EjectionPolicy(**kw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error_class", "kind"),
    [
        pytest.param("upstream_connect", FailureKind.CONNECT, id="refused"),
        pytest.param("upstream_disconnected", FailureKind.BROKEN, id="mid-stream-break"),
        pytest.param("upstream_incomplete", FailureKind.BROKEN, id="no-done"),
        pytest.param("first_token_timeout", FailureKind.TIMEOUT, id="stalled"),
        pytest.param("idle_timeout", FailureKind.TIMEOUT, id="idle"),
        pytest.param("response_timeout", FailureKind.TIMEOUT, id="whole-response"),
        pytest.param("upstream_500", FailureKind.SERVER_ERROR, id="500"),
        pytest.param("upstream_503", FailureKind.SERVER_ERROR, id="503"),
        pytest.param("upstream_stream_error", FailureKind.SERVER_ERROR, id="error-event"),
        pytest.param(None, None, id="ok"),
        pytest.param("upstream_400", None, id="4xx-is-the-request"),
        pytest.param("upstream_5000", None, id="not-a-status"),
        pytest.param("client_disconnected", None, id="client"),
        pytest.param("cancelled", None, id="cancelled"),
        pytest.param("internal:KeyError", None, id="gateway-bug"),
        pytest.param("retried", None, id="router-bookkeeping"),
    ],
)
def test_classify(error_class: str | None, kind: FailureKind | None) -> None:
    assert classify(error_class) is kind


def test_a_whole_response_deadline_after_tokens_blames_nobody() -> None:
    assert classify("response_timeout", tokens_came=True) is None
    assert classify("response_timeout", tokens_came=False) is FailureKind.TIMEOUT
    for silence in ("idle_timeout", "first_token_timeout"):  # silence still blames the instance
        assert classify(silence, tokens_came=True) is FailureKind.TIMEOUT


@pytest.mark.parametrize(
    ("policy", "levels", "expected_s"),
    [
        pytest.param({}, [1, 2, 3, 4, 5, 6, 7], [1, 2, 4, 8, 16, 30, 30], id="default-doubles-to-30"),
        pytest.param({"base_s": 0.5, "max_s": 3.0}, [1, 2, 3, 4], [0.5, 1, 2, 3], id="small-cap"),
        pytest.param({"multiplier": 1.0}, [1, 5], [1, 1], id="constant"),
    ],
)
def test_backoff_doubles_and_is_capped(policy: dict[str, float], levels: list[int], expected_s: list[float]) -> None:
    p = EjectionPolicy(**policy)  # type: ignore[arg-type]
    assert [p.backoff_s(n) for n in levels] == pytest.approx(expected_s)


@pytest.mark.parametrize(
    "kw",
    [
        {"base_s": 0.0},
        {"base_s": 5.0, "max_s": 1.0},
        {"max_s": float("inf")},
        {"multiplier": 0.5},
        {"reset_after_s": -1.0},
        {"consecutive_server_errors": 0},
        {"max_ejected_fraction": 0.0},
        {"max_ejected_fraction": 1.5},
    ],
)
def test_invalid_policies_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        EjectionPolicy(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", [FailureKind.CONNECT, FailureKind.BROKEN, FailureKind.TIMEOUT])
def test_one_connection_failure_ejects_at_once(kind: FailureKind) -> None:
    e = _ejections()
    assert e.failure(A, kind, T0) == 1.0
    assert e.ejected(A, T0, T0 - 0.1, True)
    assert e.ejected(A, T0 + 0.99, T0 + 0.9, True)
    assert not e.ejected("other", T0, T0, True)
    st = e.status(A, T0 + 0.25)
    assert (st.ejected, st.level, st.reason) == (True, 1, kind.value)
    assert st.remaining_s == pytest.approx(0.75)
    assert e.ejected_count() == 1 and e.counters.ejections == 1


@pytest.mark.parametrize(
    ("scraped_at_s", "scraped_healthy", "readmitted"),
    [
        pytest.param(T0 + 0.8, True, True, id="healthy-scrape-after-ejection"),
        pytest.param(T0, True, True, id="scrape-at-the-ejection-instant"),
        pytest.param(T0 - 0.1, True, False, id="healthy-but-taken-before-ejection"),
        pytest.param(T0 + 0.8, False, False, id="scrape-says-unhealthy"),
        pytest.param(None, False, True, id="never-scraped-static"),
    ],
)
def test_readmission_needs_the_backoff_over_and_a_fresh_healthy_scrape(
    scraped_at_s: float | None, scraped_healthy: bool, readmitted: bool
) -> None:
    e = _ejections()
    e.failure(A, FailureKind.BROKEN, T0)
    assert e.ejected(A, T0 + 0.5, scraped_at_s, scraped_healthy)  # never before the backoff ends
    assert e.ejected(A, T0 + 1.0, scraped_at_s, scraped_healthy) is not readmitted
    assert e.counters.readmissions == int(readmitted)
    assert e.ejected_count() == int(not readmitted)
    if not readmitted:  # held until the evidence arrives
        st = e.status(A, T0 + 5.0)
        assert st.ejected and st.remaining_s == 0.0
        assert not e.ejected(A, T0 + 5.0, T0 + 4.9, True)


def test_repeated_ejections_double_then_a_quiet_period_starts_over() -> None:
    e = _ejections(base_s=1.0, max_s=4.0, reset_after_s=60.0)
    now, backoffs = T0, []
    for _ in range(4):
        backoff = e.failure(A, FailureKind.CONNECT, now)
        assert backoff is not None
        backoffs.append(backoff)
        now += backoff
        assert not e.ejected(A, now, now, True)  # readmitted at the end of each backoff
        now += 1.0  # fails again soon after readmission: a repeat
    assert backoffs == [1.0, 2.0, 4.0, 4.0]
    assert e.status(A, now).level == 4
    assert e.failure(A, FailureKind.CONNECT, now + 61.0) == 1.0  # quiet for longer than reset_after_s
    assert e.status(A, now + 61.0).level == 1


def test_failures_while_ejected_are_ignored() -> None:
    e = _ejections()
    assert e.failure(A, FailureKind.CONNECT, T0) == 1.0
    for k in range(5):  # the other requests in flight to the same instance fail too
        assert e.failure(A, FailureKind.BROKEN, T0 + 0.1 * k) is None
    assert e.counters.ejections == 1 and e.counters.ignored_while_ejected == 5
    assert not e.ejected(A, T0 + 1.0, T0 + 1.0, True)
    assert e.failure(A, FailureKind.CONNECT, T0 + 1.5) == 2.0  # not stretched by the ignored ones


def test_server_errors_eject_after_a_run_that_a_success_breaks() -> None:
    e = _ejections(consecutive_server_errors=3)
    assert e.failure(A, FailureKind.SERVER_ERROR, T0) is None
    assert e.failure(A, FailureKind.SERVER_ERROR, T0) is None
    e.success(A, T0)
    assert e.failure(A, FailureKind.SERVER_ERROR, T0) is None
    assert e.failure(A, FailureKind.SERVER_ERROR, T0) is None
    assert not e.ejected(A, T0, T0, True)
    assert e.failure(A, FailureKind.SERVER_ERROR, T0) == 1.0
    assert e.ejected(A, T0, T0, True)
    assert e.status(A, T0).reason == "server_error"
    e.success("never-failed", T0)  # harmless


def test_forget_drops_the_state_and_the_count() -> None:
    e = _ejections()
    e.failure(A, FailureKind.CONNECT, T0)
    e.forget(A)
    e.forget("unknown")
    assert e.ejected_count() == 0
    assert not e.ejected(A, T0, None, True)
    assert e.status(A, T0).level == 0
    assert e.failure(A, FailureKind.CONNECT, T0 + 0.1) == 1.0  # a new instance under the same id


@pytest.mark.parametrize(
    ("fraction", "pool", "allowed"),
    [(0.5, 1, 1), (0.5, 2, 1), (0.5, 8, 4), (0.5, 9, 4), (0.1, 8, 1), (0.3, 10, 3), (1.0, 8, 8)],
)
def test_the_cap_is_a_fraction_of_the_pool_but_at_least_one(fraction: float, pool: int, allowed: int) -> None:
    assert EjectionPolicy(max_ejected_fraction=fraction).max_ejected(pool) == allowed


def test_a_failure_the_cap_forbids_ejects_nothing_and_is_counted() -> None:
    e = _ejections(consecutive_server_errors=2)
    assert e.failure(A, FailureKind.TIMEOUT, T0, may_eject=False) is None
    assert e.ejected_count() == 0 and e.counters.capped == 1 and e.counters.ejections == 0
    # a 5xx below the run threshold would not eject anyway: not a capped failure
    assert e.failure(A, FailureKind.SERVER_ERROR, T0, may_eject=False) is None
    assert e.counters.capped == 1
    assert e.failure(A, FailureKind.SERVER_ERROR, T0, may_eject=False) is None
    assert e.counters.capped == 2
    # the run is kept: once there is room, the next 5xx ejects
    assert e.failure(A, FailureKind.SERVER_ERROR, T0 + 1.0) == 1.0
    assert e.ejected_count() == 1


# --- deadlines missed while the instance made progress ---------------------------------------


def test_a_silent_timeout_spares_an_instance_that_served_others_after_it_was_sent() -> None:
    e = _ejections()
    e.progress(A, T0 + 1.0)  # another request's first token, after ours was sent at T0
    assert e.failure(A, FailureKind.TIMEOUT, T0 + 120.0, silent_since_s=T0) is None
    assert not e.ejected(A, T0 + 120.0, None, True)
    assert e.counters.spared == 1 and e.counters.ejections == 0


def test_a_success_after_the_send_is_progress_too() -> None:
    e = _ejections()
    e.success(A, T0 + 3.0)
    assert e.failure(A, FailureKind.TIMEOUT, T0 + 120.0, silent_since_s=T0) is None
    assert e.counters.spared == 1


def test_a_silent_timeout_ejects_an_instance_that_served_nobody_since() -> None:
    """A hung engine: its last progress was before the request was sent (or there was none)."""
    e = _ejections()
    e.progress(A, T0 - 5.0)
    assert e.failure(A, FailureKind.TIMEOUT, T0 + 120.0, silent_since_s=T0) == 1.0
    assert e.failure("never-served", FailureKind.TIMEOUT, T0 + 120.0, silent_since_s=T0) == 1.0
    assert e.counters.spared == 0 and e.counters.ejections == 2


def test_progress_only_spares_silent_timeouts() -> None:
    """A timeout after the request received something (an idle deadline: silent_since_s None)
    and every other failure kind still eject an instance that serves others."""
    e = _ejections(consecutive_server_errors=1)
    for iid, kind, silent_since in [
        ("i-idle", FailureKind.TIMEOUT, None),
        ("i-connect", FailureKind.CONNECT, T0),
        ("i-broken", FailureKind.BROKEN, T0),
        ("i-5xx", FailureKind.SERVER_ERROR, T0),
    ]:
        e.progress(iid, T0 + 1.0)
        assert e.failure(iid, kind, T0 + 120.0, silent_since_s=silent_since) == 1.0, iid
    assert e.counters.spared == 0


def test_progress_keeps_the_latest_time() -> None:
    e = _ejections()
    e.progress(A, T0 + 10.0)
    e.progress(A, T0 + 2.0)  # reported late: does not move progress back
    assert e.failure(A, FailureKind.TIMEOUT, T0 + 120.0, silent_since_s=T0 + 5.0) is None
    # progress exactly at the send is not after it
    e.progress("b", T0)
    assert e.failure("b", FailureKind.TIMEOUT, T0 + 120.0, silent_since_s=T0) == 1.0
