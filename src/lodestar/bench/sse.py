"""Reading an OpenAI-compatible stream: bytes → server-sent events → one request's timings.

Pure (no I/O, no clock): the caller feeds byte chunks with the wall time they arrived and
closes the stream with the time it ended. Works for both endpoints:

- chat: ``choices[0].delta.content``; completions: ``choices[0].text``. Only a *non-empty*
  content counts as a token chunk (vLLM's chat stream may open with ``{"role": "assistant",
  "content": ""}``, and a usage-only chunk has ``choices: []``).
- ``usage.completion_tokens`` (from ``stream_options.include_usage``) is the output length;
  without usage, the number of content chunks stands in (one token per chunk in vLLM).
- An error event (vLLM's ``{"error": {...}}`` or the older ``{"object": "error", ...}``, or an
  ``event: error`` field) ends the request with class ``stream_error``; a stream that ends
  without ``data: [DONE]`` is ``incomplete``; ``[DONE]`` with no content chunk is ``no_tokens``.

Times are in the caller's clock (seconds); latencies come out in the same unit.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One server-sent event: its ``event:`` name (``None`` if absent) and joined ``data:`` lines."""

    event: str | None
    data: str


class SseParser:
    """Incremental SSE framing (events end at a blank line; ``\\n``, ``\\r\\n`` or ``\\r``).

    ``feed`` returns the events completed by the new bytes; a partial event waits for more.
    Bytes that are not UTF-8 become U+FFFD (the event then fails as bad JSON, not the client).
    Comment lines (``:``) and fields other than ``event``/``data`` are ignored.
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._event: str | None = None
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SseEvent]:
        text = self._decoder.decode(chunk)  # keeps a character split across chunks for the next
        self._buffer += text.replace("\r\n", "\n").replace("\r", "\n")
        events: list[SseEvent] = []
        while True:
            line, sep, rest = self._buffer.partition("\n")
            if not sep:
                break
            self._buffer = rest
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[SseEvent]:
        """Events left when the stream ends (a last event without its blank line)."""
        events: list[SseEvent] = []
        if self._buffer:
            line, self._buffer = self._buffer, ""
            self._line(line)
        if self._data:
            events.append(self._emit())
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            return self._emit() if self._data or self._event is not None else None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None

    def _emit(self) -> SseEvent:
        event = SseEvent(self._event, "\n".join(self._data))
        self._event, self._data = None, []
        return event


@dataclass(frozen=True, slots=True)
class StreamOutcome:
    """What one streamed request measured. Latencies in the feeder's time unit; ``None`` when
    not measured (no token, or one token for ``tpot_s``). ``error`` is a short class or ``None``."""

    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float | None
    output_tokens: int
    prompt_tokens: int | None
    content_chunks: int
    error: str | None
    detail: str | None = None
    headers_s: float | None = None  # when the response headers arrived (vLLM: at admission)


class StreamTimer:
    """Turns one request's events into :class:`StreamOutcome`. ``start_s`` is when the request
    was sent; call :meth:`on_event` per event in order, then :meth:`finish` once."""

    def __init__(self, start_s: float) -> None:
        self.start_s = start_s
        self.headers_at_s: float | None = None
        self.first_token_s: float | None = None
        self.last_token_s: float | None = None
        self.content_chunks = 0
        self.usage_completion_tokens: int | None = None
        self.usage_prompt_tokens: int | None = None
        self.done = False
        self.error: str | None = None
        self.detail: str | None = None

    def on_headers(self, at_s: float) -> None:
        self.headers_at_s = at_s

    def on_event(self, event: SseEvent, at_s: float) -> None:
        if self.error is not None or self.done:
            return
        if event.data.strip() == "[DONE]":
            self.done = True
            return
        if event.event == "error":
            self._fail("stream_error", event.data)
            return
        try:
            payload = json.loads(event.data)
        except json.JSONDecodeError:
            self._fail("bad_json", event.data[:200])
            return
        if not isinstance(payload, dict):
            self._fail("bad_json", event.data[:200])
            return
        if "error" in payload or payload.get("object") == "error":
            self._fail("stream_error", _error_message(payload))
            return
        usage = payload.get("usage")
        if isinstance(usage, dict):
            if isinstance(usage.get("completion_tokens"), int):
                self.usage_completion_tokens = usage["completion_tokens"]
            if isinstance(usage.get("prompt_tokens"), int):
                self.usage_prompt_tokens = usage["prompt_tokens"]
        if _content(payload):
            self.content_chunks += 1
            if self.first_token_s is None:
                self.first_token_s = at_s
            self.last_token_s = at_s

    def finish(self, end_s: float, error: str | None = None, detail: str | None = None) -> StreamOutcome:
        """Close the request at ``end_s``; ``error`` (e.g. a transport failure) wins over
        what the stream showed."""
        if error is not None and self.error is None:
            self._fail(error, detail)
        if self.error is None and not self.done:
            self._fail("incomplete", "the stream ended without data: [DONE]")
        if self.error is None and self.first_token_s is None:
            self._fail("no_tokens", "the stream carried no content")
        tokens = self.usage_completion_tokens if self.usage_completion_tokens is not None else self.content_chunks
        ttft = tpot = None
        if self.first_token_s is not None:
            ttft = self.first_token_s - self.start_s
            if tokens >= 2 and self.last_token_s is not None:
                tpot = (self.last_token_s - self.first_token_s) / (tokens - 1)
        return StreamOutcome(
            ttft_s=ttft,
            tpot_s=tpot,
            e2e_s=end_s - self.start_s if self.error is None else None,
            output_tokens=tokens,
            prompt_tokens=self.usage_prompt_tokens,
            content_chunks=self.content_chunks,
            error=self.error,
            detail=self.detail,
            headers_s=None if self.headers_at_s is None else self.headers_at_s - self.start_s,
        )

    def _fail(self, error: str, detail: str | None) -> None:
        self.error = error
        self.detail = detail


def _content(payload: dict[str, Any]) -> bool:
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return False
    choice = choices[0]
    delta = choice.get("delta")
    if isinstance(delta, dict):
        return bool(delta.get("content")) or bool(delta.get("reasoning_content"))
    return bool(choice.get("text"))


def _error_message(payload: dict[str, Any]) -> str:
    err = payload.get("error", payload)
    if isinstance(err, dict):
        return str(err.get("message") or err)
    return str(err)
