"""Pass-through scanning of an upstream OpenAI stream (server-sent events), one read at a time.

:meth:`StreamScanner.feed` returns the bytes to forward: the complete events received so far,
unchanged (a partial event waits for its end, so whatever the gateway appends later — an error
event — is always well-formed). It parses only what it must:

- every event until the first content token (the assistant-role chunk carries none), to time
  the first token;
- events that mention ``"usage"`` (the usage chunk, or usage in every chunk) and events that
  are an ``{"error": ...}``;
- nothing else: after the first token an event is a token event unless it is a bare finish
  chunk (``"delta":{}``); its arrival time is the last token's.

With ``strip_usage`` the usage-only chunk (``choices: []``) is dropped from what is forwarded
(the gateway asked for usage on the client's behalf). ``[DONE]`` marks a complete stream.

Only events that may be dropped or are errors (those mentioning ``"usage"`` or ``"error"``)
are parsed before :meth:`StreamScanner.feed` returns; the others are kept whatever they say,
so parsing them waits for :meth:`StreamScanner.settle`, which the relay calls once the bytes
are on their way to the client: the first token is not held back by its own timing. Call
``settle`` after every ``feed`` (times are those passed to ``feed``); read the results after it.
"""

from __future__ import annotations

import json
from typing import Any

_DATA = b"data:"
_DONE = b"[DONE]"


def has_content(choices: Any) -> bool:
    """Whether any choice carries output: completion ``text``, or a chat ``delta`` with a
    non-empty field other than ``role`` (content, reasoning, tool calls...)."""
    if not isinstance(choices, list):
        return False
    for choice in choices:
        if not isinstance(choice, dict):
            continue
        if choice.get("text"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and any(v for k, v in delta.items() if k != "role"):
            return True
    return False


def _kept_whatever_it_says(event: bytes) -> bool:
    """Not an event that could be dropped (usage) or recorded as an error."""
    return b'"usage"' not in event and b'"error"' not in event


class StreamScanner:
    """What one stream said so far. Times are whatever clock the caller passes (seconds)."""

    __slots__ = (
        "_later",
        "_pending",
        "_sep",
        "done",
        "error",
        "first_token_s",
        "last_token_s",
        "strip_usage",
        "token_events",
        "usage",
    )

    def __init__(self, strip_usage: bool) -> None:
        self.strip_usage = strip_usage
        self.first_token_s: float | None = None
        self.last_token_s: float | None = None
        self.token_events = 0
        self.usage: dict[str, Any] | None = None
        self.error: dict[str, Any] | None = None
        self.done = False
        self._pending = b""
        self._sep: bytes | None = None
        self._later: list[tuple[bytes, float]] = []

    @property
    def completion_tokens(self) -> int:
        """From the upstream usage when it came, else the number of token events."""
        if self.usage is not None:
            n = self.usage.get("completion_tokens")
            if isinstance(n, int) and n >= 0:
                return n
        return self.token_events

    def feed(self, chunk: bytes, now_s: float) -> bytes:
        """Bytes to forward for this upstream read (possibly empty)."""
        data = self._pending + chunk if self._pending else chunk
        sep = self._sep
        if sep is None:
            if b"\n" not in data:
                self._pending = data
                return b""
            sep = self._sep = b"\r\n\r\n" if b"\r\n" in data else b"\n\n"
        end = data.rfind(sep)
        if end < 0:
            self._pending = data
            return b""
        end += len(sep)
        self._pending = data[end:]
        complete = data[:end] if self._pending else data
        events = complete.split(sep)
        events.pop()  # after the last separator: empty
        dropped: list[int] | None = None
        for i, event in enumerate(events):
            if self.first_token_s is None and _kept_whatever_it_says(event):
                # within one read every event has the same time, so scanning these after the
                # others gives the same results
                self._later.append((event, now_s))
                continue
            if not self._scan(event, now_s):
                dropped = [i] if dropped is None else [*dropped, i]
        if dropped is None:
            return complete
        return b"".join(e + sep for i, e in enumerate(events) if i not in dropped)

    def settle(self) -> None:
        """Scan the events :meth:`feed` passed on without parsing."""
        later, self._later = self._later, []
        for event, now_s in later:
            self._scan(event, now_s)

    def _scan(self, event: bytes, now_s: float) -> bool:
        """Record ``event``; False if it is to be dropped."""
        if not event.startswith(_DATA):
            return True  # comments, event names: forwarded, not counted
        if self.first_token_s is not None and _kept_whatever_it_says(event):
            # the hot path: no parsing (quotes inside JSON strings are escaped, so these
            # byte patterns only match keys)
            if event.endswith(_DONE):
                self.done = True
            elif b'"delta":{}' not in event:
                self.last_token_s = now_s
                self.token_events += 1
            return True
        payload = event[5:].strip()
        if payload == _DONE:
            self.done = True
            return True
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError):
            return True  # not ours to judge: forwarded as sent
        if not isinstance(obj, dict):
            return True
        error = obj.get("error")
        if isinstance(error, dict) and "choices" not in obj:
            self.error = error
            return True
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = obj.get("choices")
        if has_content(choices):
            if self.first_token_s is None:
                self.first_token_s = now_s
            self.last_token_s = now_s
            self.token_events += 1
            return True
        return not (self.strip_usage and isinstance(usage, dict) and not choices)
