"""A whole OpenAI answer (``chat.completion`` / ``text_completion``) assembled from the stream
the gateway asked for on a non-streamed client's behalf.

The gateway always streams upstream so that it can time the first token of every request;
a client that did not ask for a stream gets what the instance would have answered without
one. :meth:`Assembler.feed` takes complete SSE events (what
:class:`~lodestar_gateway.sse.StreamScanner` forwards), :meth:`Assembler.body` the answer:

- top level: ``id``, ``created``, ``model`` (and ``system_fingerprint``) of the first chunk,
  ``usage`` of the usage chunk;
- per choice (by ``index``, in index order): chat ``message`` with ``role``, the joined
  ``content`` (``null`` when no content came, as with tool calls only), other text fields of
  the deltas joined (``reasoning_content``...), ``tool_calls`` (``[]`` if none, as vLLM
  answers) merged by their ``index``
  (``id``, ``type``, ``function.name`` as sent, ``function.arguments`` joined); completion
  ``text`` joined; ``logprobs`` lists concatenated; the last ``finish_reason`` and
  ``stop_reason``.

An ``{"error": ...}`` event is kept in :attr:`Assembler.error` (the caller answers with it).
Pure; never raises on odd events (an unparsable or unexpected event is skipped).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["chat", "completion"]

_OBJECT: dict[Kind, str] = {"chat": "chat.completion", "completion": "text_completion"}
_COMPLETION_LOGPROB_LISTS = ("tokens", "token_logprobs", "top_logprobs", "text_offset")


@dataclass
class _Choice:
    index: int
    role: str = "assistant"
    content: list[str] | None = None
    texts: dict[str, list[str]] = field(default_factory=dict)  # other text fields of deltas
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    logprobs: dict[str, list[Any]] | None = None
    finish_reason: Any = None
    stop_reason: Any = None


class Assembler:
    """Collects one stream; ``kind`` is the client's endpoint."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self.error: dict[str, Any] | None = None
        self.usage: dict[str, Any] | None = None
        self._head: dict[str, Any] = {}
        self._choices: dict[int, _Choice] = {}

    def feed(self, events: bytes) -> None:
        """Complete events (``data: {...}`` separated by blank lines)."""
        for event in events.replace(b"\r\n", b"\n").split(b"\n\n"):
            data = b"\n".join(line[5:].strip() for line in event.split(b"\n") if line.startswith(b"data:"))
            if not data or data == b"[DONE]":
                continue
            try:
                obj = json.loads(data)
            except (ValueError, RecursionError):
                continue
            if isinstance(obj, dict):
                self._chunk(obj)

    def _chunk(self, obj: dict[str, Any]) -> None:
        error = obj.get("error")
        if isinstance(error, dict) and "choices" not in obj:
            self.error = error
            return
        if not self._head:
            self._head = {k: obj[k] for k in ("id", "created", "model", "system_fingerprint") if k in obj}
        usage = obj.get("usage")
        if isinstance(usage, dict):
            self.usage = usage
        choices = obj.get("choices")
        if not isinstance(choices, list):
            return
        for raw in choices:
            if isinstance(raw, dict) and isinstance(raw.get("index"), int):
                choice = self._choices.get(raw["index"])
                if choice is None:
                    choice = self._choices[raw["index"]] = _Choice(raw["index"])
                self._merge(choice, raw)

    def _merge(self, choice: _Choice, raw: dict[str, Any]) -> None:
        if raw.get("finish_reason") is not None:
            choice.finish_reason = raw["finish_reason"]
        if raw.get("stop_reason") is not None:
            choice.stop_reason = raw["stop_reason"]
        logprobs = raw.get("logprobs")
        if isinstance(logprobs, dict):
            target = choice.logprobs if choice.logprobs is not None else {}
            choice.logprobs = target
            for key, value in logprobs.items():
                if isinstance(value, list):
                    target.setdefault(key, []).extend(value)
        if self.kind == "completion":
            text = raw.get("text")
            if isinstance(text, str):
                choice.texts.setdefault("text", []).append(text)
            return
        delta = raw.get("delta")
        if not isinstance(delta, dict):
            return
        for key, value in delta.items():
            if key == "role" and isinstance(value, str):
                choice.role = value
            elif key == "content" and isinstance(value, str):
                choice.content = [*(choice.content or []), value]
            elif key == "tool_calls" and isinstance(value, list):
                _merge_tool_calls(choice.tool_calls, value)
            elif isinstance(value, str):
                choice.texts.setdefault(key, []).append(value)

    def body(self) -> dict[str, Any]:
        """The whole answer, as the instance would have sent it without ``stream``."""
        choices = [self._render(self._choices[i]) for i in sorted(self._choices)]
        answer: dict[str, Any] = {
            "id": self._head.get("id", ""),
            "object": _OBJECT[self.kind],
            "created": self._head.get("created", 0),
            "model": self._head.get("model", ""),
            "choices": choices,
        }
        if "system_fingerprint" in self._head:
            answer["system_fingerprint"] = self._head["system_fingerprint"]
        if self.usage is not None:
            answer["usage"] = self.usage
        return answer

    def _render(self, choice: _Choice) -> dict[str, Any]:
        out: dict[str, Any] = {"index": choice.index}
        if self.kind == "completion":
            out["text"] = "".join(choice.texts.get("text", []))
            logprobs: Any = None
            if choice.logprobs is not None:
                logprobs = {key: choice.logprobs.get(key, []) for key in _COMPLETION_LOGPROB_LISTS}
            out["logprobs"] = logprobs
        else:
            message: dict[str, Any] = {
                "role": choice.role,
                "content": "".join(choice.content) if choice.content is not None else None,
            }
            for key, parts in choice.texts.items():
                message[key] = "".join(parts)
            message["tool_calls"] = [choice.tool_calls[i] for i in sorted(choice.tool_calls)]
            out["message"] = message
            out["logprobs"] = choice.logprobs
        out["finish_reason"] = choice.finish_reason
        out["stop_reason"] = choice.stop_reason
        return out


def _merge_tool_calls(calls: dict[int, dict[str, Any]], deltas: list[Any]) -> None:
    for delta in deltas:
        if not isinstance(delta, dict):
            continue
        index = delta.get("index", len(calls))
        if not isinstance(index, int):
            continue
        call = calls.setdefault(index, {"id": None, "type": "function", "function": {"name": None, "arguments": ""}})
        for key in ("id", "type"):
            if isinstance(delta.get(key), str):
                call[key] = delta[key]
        function = delta.get("function")
        if isinstance(function, dict):
            if isinstance(function.get("name"), str):
                call["function"]["name"] = function["name"]
            if isinstance(function.get("arguments"), str):
                call["function"]["arguments"] += function["arguments"]
