"""Latency arithmetic and the mapping of a measured request to its outcome event and to the
router's feedback: ids, units, statuses, no text."""

from __future__ import annotations

import pytest

from lodestar_gateway.outcomes import (
    Measured,
    attempt_failed_feedback,
    final_feedback,
    first_token_feedback,
    outcome_event,
    tpot_s,
    ttft_s,
)
from lodestar_schemas.codec import encode_event
from lodestar_schemas.events import RequestOutcome


@pytest.mark.parametrize(
    ("start", "first", "expected"),
    [(10.0, 10.25, 0.25), (10.0, None, None), (10.0, 9.0, 0.0)],
)
def test_ttft(start: float, first: float | None, expected: float | None) -> None:
    assert ttft_s(start, first) == expected


@pytest.mark.parametrize(
    ("first", "last", "tokens", "expected"),
    [
        (1.0, 2.0, 11, 0.1),  # 10 gaps after the first token
        (1.0, 1.0, 2, 0.0),  # both tokens in one chunk
        (1.0, 1.0, 1, None),  # one token: no time per output token
        (1.0, 3.0, 0, None),
        (None, 3.0, 5, None),
        (1.0, None, 5, None),
        (1.0, 1.5, 3, 0.25),  # several tokens per chunk: usage counts them, times are the chunks'
    ],
)
def test_tpot(first: float | None, last: float | None, tokens: int, expected: float | None) -> None:
    got = tpot_s(first, last, tokens)
    assert got == pytest.approx(expected) if expected is not None else got is None


def _measured(**kw: object) -> Measured:
    m = Measured(request_id="req-1", model="llama-3-8b", stream=True, prompt_tokens=120, start_s=100.0)
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def test_an_ok_stream_maps_to_its_outcome() -> None:
    m = _measured(
        end_s=101.0, first_token_s=100.2, last_token_s=100.8, completion_tokens=7, instance_id="h100-0",
        policy="lodestar", attempts=2,
    )  # fmt: skip
    event = outcome_event(m)
    assert isinstance(event, RequestOutcome)
    assert (event.request_id, event.decision_id, event.model) == ("req-1", "req-1", "llama-3-8b")
    assert event.instance_id == "h100-0"
    assert event.ttft_s == pytest.approx(0.2) and event.tpot_s == pytest.approx(0.1)
    assert event.e2e_s == pytest.approx(1.0)
    assert (event.status, event.http_status, event.error_class) == ("ok", 200, None)
    assert (event.fallback, event.attempts) == (False, 2)
    assert (event.prompt_tokens, event.completion_tokens, event.stream, event.policy) == (120, 7, True, "lodestar")


def test_a_request_that_reached_no_instance() -> None:
    m = _measured(end_s=100.01)
    m.fail("error", 503, "no_instance")
    event = outcome_event(m)
    assert (event.instance_id, event.policy, event.attempts, event.ttft_s, event.tpot_s) == (None, None, 1, None, None)
    assert (event.status, event.http_status, event.error_class) == ("error", 503, "no_instance")


def test_outcome_events_carry_no_text() -> None:
    m = _measured(end_s=101.0, instance_id="a10g-0", policy="least-request", fallback=True)
    fields = set(RequestOutcome.model_fields)
    assert not fields & {"prompt", "messages", "text", "content", "completion"}
    assert b"prompt_tokens" in encode_event(outcome_event(m))


def test_error_class_is_bounded() -> None:
    m = _measured(end_s=100.5)
    m.fail("error", 502, "x" * 500)
    assert outcome_event(m).error_class == "x" * 128


def test_feedback_mapping() -> None:
    m = _measured(end_s=101.0, first_token_s=100.5, last_token_s=100.9, completion_tokens=5)
    first = first_token_feedback(m, "h100-0")
    assert (first.kind, first.decision_id, first.instance_id, first.ttft_s) == ("first_token", "req-1", "h100-0", 0.5)
    done = final_feedback(m, "h100-0")
    assert (done.kind, done.error, done.completion_tokens, done.prompt_tokens) == ("finished", None, 5, 120)
    assert done.tpot_s == pytest.approx(0.1) and done.e2e_s == pytest.approx(1.0)
    m.fail("cancelled", 499, "client_disconnected")
    failed = final_feedback(m, "h100-0")
    assert (failed.kind, failed.error) == ("failed", "client_disconnected")
    retry = attempt_failed_feedback(m, "a10g-0", "upstream_connect", 100.25)
    assert (retry.kind, retry.instance_id, retry.error, retry.e2e_s) == ("failed", "a10g-0", "upstream_connect", 0.25)
