"""Stream scanning: bytes pass through unchanged (however the instance splits them), the usage
chunk is stripped only when the gateway asked for it, the first token is the first content
(not the role chunk), tokens and usage are found, errors and [DONE] are recognised. Streams
come from the emulator's own renderers (vLLM's chunk shapes)."""

from __future__ import annotations

import json

import pytest

from lodestar import tokenizer
from lodestar.emulator.render import ChatStreamRenderer, CompletionStreamRenderer, StreamRenderer
from lodestar_gateway.sse import StreamScanner, has_content

TEXTS = tokenizer.pieces(tokenizer.synthesize(6, seed=7))


def _stream(chat: bool, include_usage: bool, continuous: bool = False) -> bytes:
    cls: type[StreamRenderer] = ChatStreamRenderer if chat else CompletionStreamRenderer
    r = cls("cmpl-1", "llama-3-8b", 1700000000, TEXTS, 12, include_usage, continuous)
    return r.tokens(0, len(TEXTS)) + r.tail(None)


def _events(raw: bytes) -> list[bytes]:
    return [e for e in raw.split(b"\n\n") if e]


def fed(scanner: StreamScanner, chunk: bytes, now_s: float) -> bytes:
    """One upstream read as the relay handles it: feed, forward, settle."""
    out = scanner.feed(chunk, now_s)
    scanner.settle()
    return out


def _feed_all(scanner: StreamScanner, raw: bytes, sizes: int | None) -> bytes:
    out = b""
    if sizes is None:
        return fed(scanner, raw, 1.0)
    for i in range(0, len(raw), sizes):
        out += fed(scanner, raw[i : i + sizes], 1.0 + i)
    return out


@pytest.mark.parametrize("chat", [True, False])
@pytest.mark.parametrize("split", [None, 1, 7, 64, 500])
def test_a_stream_with_client_usage_passes_through_unchanged(chat: bool, split: int | None) -> None:
    raw = _stream(chat, include_usage=True)
    scanner = StreamScanner(strip_usage=False)
    assert _feed_all(scanner, raw, split) == raw
    assert scanner.done and scanner.error is None
    assert scanner.usage is not None and scanner.usage["completion_tokens"] == len(TEXTS)
    assert scanner.completion_tokens == scanner.token_events == len(TEXTS)


@pytest.mark.parametrize("chat", [True, False])
@pytest.mark.parametrize("split", [None, 1, 13, 200])
def test_the_usage_chunk_is_stripped_when_the_gateway_asked_for_it(chat: bool, split: int | None) -> None:
    with_usage, without = _stream(chat, include_usage=True), _stream(chat, include_usage=False)
    scanner = StreamScanner(strip_usage=True)
    assert _feed_all(scanner, with_usage, split) == without  # what the client would have got
    assert scanner.usage is not None and scanner.completion_tokens == len(TEXTS)
    assert scanner.done


def test_usage_in_every_chunk_is_kept_and_the_last_one_counts() -> None:
    raw = _stream(True, include_usage=True, continuous=True)
    scanner = StreamScanner(strip_usage=True)
    out = fed(scanner, raw, 0.0)
    # token chunks carry usage but also choices: forwarded; only the usage-only chunk goes
    assert out == b"".join(e + b"\n\n" for e in _events(raw) if b'"choices":[]' not in e)
    assert scanner.usage is not None and scanner.usage["completion_tokens"] == len(TEXTS)


def test_the_first_token_is_the_first_content_not_the_role_chunk() -> None:
    role = b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
    tok = b'data: {"choices":[{"index":0,"delta":{"content":" hi"}}]}\n\n'
    scanner = StreamScanner(strip_usage=False)
    assert fed(scanner, role, 1.0) == role
    assert scanner.first_token_s is None and scanner.token_events == 0
    fed(scanner, tok, 2.0)
    fed(scanner, tok + tok, 3.5)
    assert (scanner.first_token_s, scanner.last_token_s, scanner.token_events) == (2.0, 3.5, 3)


def test_a_finish_only_chunk_is_not_a_token() -> None:
    scanner = StreamScanner(strip_usage=False)
    fed(scanner, b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n', 1.0)
    fed(scanner, b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n', 9.0)
    fed(scanner, b"data: [DONE]\n\n", 9.5)
    assert (scanner.token_events, scanner.last_token_s, scanner.done) == (1, 1.0, True)


def test_a_partial_event_waits_for_its_end() -> None:
    scanner = StreamScanner(strip_usage=False)
    event = b'data: {"choices":[{"index":0,"text":" x"}]}\n\n'
    assert fed(scanner, event[:10], 1.0) == b""
    assert fed(scanner, event[10:-1], 2.0) == b""
    assert fed(scanner, event[-1:], 3.0) == event
    assert scanner.first_token_s == 3.0


def test_crlf_separated_events() -> None:
    raw = b'data: {"choices":[{"index":0,"text":" x"}]}\r\n\r\ndata: [DONE]\r\n\r\n'
    scanner = StreamScanner(strip_usage=True)
    assert fed(scanner, raw[:20], 0.0) + fed(scanner, raw[20:], 1.0) == raw
    assert scanner.done and scanner.token_events == 1


def test_an_error_event_is_recorded_and_forwarded() -> None:
    error = {"error": {"message": "engine died", "type": "InternalServerError", "param": None, "code": 500}}
    raw = b'data: {"choices":[{"index":0,"text":" x"}]}\n\ndata: ' + json.dumps(error).encode() + b"\n\n"
    scanner = StreamScanner(strip_usage=True)
    assert fed(scanner, raw, 0.0) == raw
    assert scanner.error == error["error"] and not scanner.done


def test_comments_and_unparseable_events_pass() -> None:
    raw = b": keep-alive\n\ndata: {not json\n\nevent: x\n\n"
    scanner = StreamScanner(strip_usage=True)
    assert fed(scanner, raw, 0.0) == raw
    assert scanner.token_events == 0


def test_token_text_that_looks_like_keys_does_not_confuse_the_fast_path() -> None:
    scanner = StreamScanner(strip_usage=True)
    first = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
    tricky = json.dumps({"choices": [{"index": 0, "delta": {"content": '"usage": "delta":{} "error"'}}]}).encode()
    out = fed(scanner, first + b"data: " + tricky + b"\n\n", 1.0)
    assert out == first + b"data: " + tricky + b"\n\n"
    assert scanner.token_events == 2 and scanner.usage is None and scanner.error is None


def test_without_usage_tokens_are_counted_from_events() -> None:
    raw = _stream(False, include_usage=False)
    scanner = StreamScanner(strip_usage=True)
    fed(scanner, raw, 0.0)
    assert scanner.usage is None and scanner.completion_tokens == len(TEXTS)


@pytest.mark.parametrize(
    ("choices", "expected"),
    [
        ([{"delta": {"role": "assistant", "content": ""}}], False),
        ([{"delta": {"content": "x"}}], True),
        ([{"delta": {"reasoning_content": "think"}}], True),
        ([{"delta": {"tool_calls": [{"id": "t"}]}}], True),
        ([{"text": ""}], False),
        ([{"text": "x"}], True),
        ([], False),
        (None, False),
    ],
)
def test_has_content(choices: object, expected: bool) -> None:
    assert has_content(choices) is expected


def test_events_that_are_kept_anyway_are_parsed_after_they_are_passed_on() -> None:
    """The first token's event goes out before it is parsed; a usage chunk is judged at once."""
    scanner = StreamScanner(strip_usage=True)
    token = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
    usage = b'data: {"choices":[],"usage":{"completion_tokens":1}}\n\n'
    assert scanner.feed(token, 1.0) == token
    assert scanner.first_token_s is None and scanner.token_events == 0
    scanner.settle()
    assert (scanner.first_token_s, scanner.token_events) == (1.0, 1)
    assert scanner.feed(usage + b"data: [DONE]\n\n", 2.0) == b"data: [DONE]\n\n"
    assert scanner.usage == {"completion_tokens": 1} and scanner.done
    # in one read, a usage chunk with content after a plain token: same times, same counts
    both = StreamScanner(strip_usage=False)
    with_content = b'data: {"choices":[{"index":0,"delta":{"content":"b"}}],"usage":{"completion_tokens":2}}\n\n'
    assert fed(both, token + with_content, 3.0) == token + with_content
    assert (both.first_token_s, both.last_token_s, both.token_events) == (3.0, 3.0, 2)
