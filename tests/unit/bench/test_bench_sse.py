"""SSE framing and per-request timing: TTFT from the first non-empty content, TPOT from usage
(or chunk count), error events, incomplete streams."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lodestar.bench.sse import SseEvent, SseParser, StreamOutcome, StreamTimer


def data(payload: dict[str, Any] | str) -> bytes:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return f"data: {text}\n\n".encode()


def chat(content: str | None, role: str | None = None, finish: str | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    return {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def text(t: str) -> dict[str, Any]:
    return {"object": "text_completion", "choices": [{"index": 0, "text": t, "finish_reason": None}]}


def usage(completion: int, prompt: int = 10) -> dict[str, Any]:
    return {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


DONE = b"data: [DONE]\n\n"


def replay(chunks: list[tuple[float, bytes]], end_s: float, start_s: float = 0.0) -> StreamOutcome:
    """Feed ``(time, bytes)`` chunks as a client would and close at ``end_s``."""
    parser, timer = SseParser(), StreamTimer(start_s)
    for at, chunk in chunks:
        for event in parser.feed(chunk):
            timer.on_event(event, at)
    for event in parser.close():
        timer.on_event(event, end_s)
    return timer.finish(end_s)


CASES: list[tuple[str, list[tuple[float, bytes]], float, dict[str, Any]]] = [
    (
        "chat: role opening with empty content does not count; usage gives the length",
        [
            (0.10, data(chat("", role="assistant"))),
            (0.25, data(chat(" hello"))),
            (0.35, data(chat(" big"))),
            (0.45, data(chat(" world", finish="length"))),
            (0.46, data(usage(3)) + DONE),
        ],
        0.5,
        {"ttft_s": 0.25, "tpot_s": 0.1, "e2e_s": 0.5, "output_tokens": 3, "prompt_tokens": 10, "error": None},
    ),
    (
        "completions endpoint: choices[0].text",
        [(0.2, data(text(" a"))), (0.4, data(text(" b"))), (0.6, data(text(" c"))), (0.6, data(usage(3)) + DONE)],
        0.7,
        {"ttft_s": 0.2, "tpot_s": pytest.approx(0.2), "e2e_s": 0.7, "output_tokens": 3, "error": None},
    ),
    (
        "empty deltas and null content are skipped",
        [
            (0.1, data(chat(None, role="assistant"))),
            (0.2, data(chat(""))),
            (0.3, data(chat(" x"))),
            (0.5, data(chat(" y"))),
            (0.5, DONE),
        ],
        0.5,
        {"ttft_s": 0.3, "tpot_s": pytest.approx(0.2), "output_tokens": 2, "prompt_tokens": None, "error": None},
    ),
    (
        "without usage the content chunks are counted",
        [(0.1, data(text("a"))), (0.2, data(text("b"))), (0.3, data(text("c"))), (0.4, data(text("d")) + DONE)],
        0.4,
        {"output_tokens": 4, "tpot_s": pytest.approx(0.1), "content_chunks": 4, "error": None},
    ),
    (
        "usage in every chunk (continuous_usage_stats): the last one wins",
        [
            (0.1, data({**text("a"), "usage": {"prompt_tokens": 5, "completion_tokens": 1}})),
            (0.3, data({**text("b"), "usage": {"prompt_tokens": 5, "completion_tokens": 2}})),
            (0.3, DONE),
        ],
        0.3,
        {"output_tokens": 2, "prompt_tokens": 5, "tpot_s": pytest.approx(0.2), "error": None},
    ),
    (
        "several tokens in one chunk share its time; usage says how many",
        [(0.2, data(text("a")) + data(text("b")) + data(text("c"))), (0.2, data(usage(3)) + DONE)],
        0.2,
        {"ttft_s": 0.2, "tpot_s": 0.0, "output_tokens": 3, "error": None},
    ),
    (
        "one token: no TPOT",
        [(0.2, data(text("a"))), (0.2, data(usage(1)) + DONE)],
        0.25,
        {"ttft_s": 0.2, "tpot_s": None, "output_tokens": 1, "error": None},
    ),
    (
        "vLLM error event mid-stream",
        [(0.1, data(text("a"))), (0.2, data({"error": {"message": "boom", "type": "InternalServerError"}}))],
        0.2,
        {"error": "stream_error", "detail": "boom", "e2e_s": None, "ttft_s": pytest.approx(0.1)},
    ),
    (
        "older vLLM error object",
        [(0.1, data({"object": "error", "message": "too long", "type": "BadRequestError", "code": 400}))],
        0.1,
        {"error": "stream_error", "detail": "too long", "ttft_s": None},
    ),
    (
        "SSE event named error",
        [(0.1, b"event: error\ndata: overloaded\n\n")],
        0.1,
        {"error": "stream_error", "detail": "overloaded"},
    ),
    (
        "stream cut before [DONE]",
        [(0.1, data(text("a"))), (0.2, data(text("b")))],
        0.3,
        {"error": "incomplete", "ttft_s": pytest.approx(0.1), "output_tokens": 2, "e2e_s": None},
    ),
    (
        "[DONE] without any content",
        [(0.1, data(chat("", role="assistant"))), (0.2, data(usage(0)) + DONE)],
        0.2,
        {"error": "no_tokens", "ttft_s": None},
    ),
    (
        "a data line that is not JSON",
        [(0.1, b"data: {not json\n\n")],
        0.1,
        {"error": "bad_json"},
    ),
    (
        "last event without its blank line, then the connection closes",
        [(0.1, data(text("a"))), (0.2, b"data: [DONE]")],
        0.3,
        {"error": None, "output_tokens": 1},
    ),
]


@pytest.mark.parametrize(("chunks", "end_s", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_stream_timing(chunks: list[tuple[float, bytes]], end_s: float, expected: dict[str, Any]) -> None:
    outcome = replay(chunks, end_s)
    for field, value in expected.items():
        assert getattr(outcome, field) == value, field


def test_latencies_are_relative_to_the_send_time() -> None:
    outcome = replay([(10.3, data(text("a"))), (10.5, data(text("b"))), (10.5, data(usage(2)) + DONE)], 11.0, 10.0)
    assert outcome.ttft_s == pytest.approx(0.3)
    assert outcome.tpot_s == pytest.approx(0.2)
    assert outcome.e2e_s == pytest.approx(1.0)


def test_a_transport_error_wins_over_the_stream() -> None:
    timer = StreamTimer(0.0)
    timer.on_event(SseEvent(None, json.dumps(text("a"))), 0.1)
    outcome = timer.finish(0.5, "read_error", "ReadError: reset")
    assert (outcome.error, outcome.detail, outcome.e2e_s, outcome.ttft_s) == (
        "read_error",
        "ReadError: reset",
        None,
        0.1,
    )


def test_events_after_done_or_error_are_ignored() -> None:
    timer = StreamTimer(0.0)
    timer.on_event(SseEvent(None, json.dumps(text("a"))), 0.1)
    timer.on_event(SseEvent(None, "[DONE]"), 0.2)
    timer.on_event(SseEvent(None, json.dumps(text("late"))), 0.3)
    assert timer.finish(0.3).content_chunks == 1


# --- framing --------------------------------------------------------------------------------

FRAMING: list[tuple[str, list[bytes], list[SseEvent]]] = [
    ("one event", [b"data: x\n\n"], [SseEvent(None, "x")]),
    ("split across chunks", [b"da", b"ta: x", b"\n", b"\ndata: y\n\n"], [SseEvent(None, "x"), SseEvent(None, "y")]),
    ("CRLF line ends", [b"data: x\r\n\r\ndata: y\r\n\r\n"], [SseEvent(None, "x"), SseEvent(None, "y")]),
    ("CR line ends", [b"data: x\r\rdata: y\r\r"], [SseEvent(None, "x"), SseEvent(None, "y")]),
    ("multi-line data joined with newlines", [b"data: a\ndata: b\n\n"], [SseEvent(None, "a\nb")]),
    ("comments and unknown fields ignored", [b": ping\nid: 3\nretry: 5\ndata: x\n\n"], [SseEvent(None, "x")]),
    ("event name kept", [b"event: error\ndata: bad\n\n"], [SseEvent("error", "bad")]),
    ("no space after the colon", [b"data:x\n\n"], [SseEvent(None, "x")]),
    ("blank lines alone make no event", [b"\n\n\n"], []),
    (
        "a UTF-8 character split across chunks",
        ["data: é€\n\n".encode()[:9], "data: é€\n\n".encode()[9:]],
        [SseEvent(None, "é€")],
    ),
]


@pytest.mark.parametrize(("chunks", "expected"), [c[1:] for c in FRAMING], ids=[c[0] for c in FRAMING])
def test_framing(chunks: list[bytes], expected: list[SseEvent]) -> None:
    parser = SseParser()
    events = [e for c in chunks for e in parser.feed(c)] + parser.close()
    assert events == expected


def test_invalid_utf8_is_replaced_not_raised() -> None:
    events = SseParser().feed(b"data: \xff\xfe{\n\n")
    assert events == [SseEvent(None, "\ufffd\ufffd{")]
    timer = StreamTimer(0.0)
    timer.on_event(events[0], 0.1)
    assert timer.finish(0.1).error == "bad_json"


def test_headers_time_is_relative_to_the_send() -> None:
    timer = StreamTimer(2.0)
    timer.on_headers(2.004)
    timer.on_event(SseEvent(None, json.dumps(text("a"))), 2.1)
    timer.on_event(SseEvent(None, "[DONE]"), 2.1)
    outcome = timer.finish(2.1)
    assert outcome.headers_s == pytest.approx(0.004)
    assert StreamTimer(0.0).finish(1.0, "connect").headers_s is None
