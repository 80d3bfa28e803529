"""From a client's body to what the gateway needs: the model, the routing inputs (prompt tokens,
chained 16-token block hashes, expected output) and the body to send upstream. Pure; every
error is a :class:`~lodestar_gateway.errors.OpenAIError` (400) naming the field.

- Chat: ``render_chat(messages)`` (the project's chat template), tokenised once.
- Completions: the prompt string, or a list of token ids (block hashes from those ids); a
  batch of prompts counts all their tokens and hashes the first one's blocks.
- Upstream, every request is a stream with usage (``stream: true``,
  ``stream_options.include_usage``), so the gateway times the first token of every request and
  completion tokens are exact. A client stream's :attr:`ParsedRequest.client_usage` says
  whether the client asked for the usage chunk itself (if not, the gateway strips it); a
  non-streamed request is answered with the whole response assembled from the stream
  (:mod:`lodestar_gateway.assemble`). A client stream that already asks for usage goes
  upstream byte for byte. ``stream_options`` without ``stream: true`` is refused as vLLM does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import from_json

from lodestar import tokenizer
from lodestar.openai_errors import bad_request, invalid_body
from lodestar.workload.request import Prompt
from lodestar_gateway.protocol import ChatCompletionRequest, CompletionRequest

Kind = Literal["chat", "completion"]
_JSON_TYPES: dict[type, str] = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
PATHS: dict[Kind, str] = {"chat": "/v1/chat/completions", "completion": "/v1/completions"}


@dataclass(frozen=True, slots=True)
class Limits:
    max_prompt_tokens: int
    max_output_tokens: int


@dataclass(frozen=True, slots=True)
class ParsedRequest:
    kind: Kind
    model: str
    stream: bool
    prompt_tokens: int
    block_hashes: list[int]
    expected_output_tokens: int | None
    prompt_param: str
    output_param: str
    client_usage: bool
    upstream_body: bytes
    text: str | None = None  # the prompt text, kept only when text logging is on

    @property
    def path(self) -> str:
        return PATHS[self.kind]


def parse_request(kind: Kind, raw: bytes, limits: Limits, keep_text: bool = False) -> ParsedRequest:
    data = _json_object(raw)
    request: ChatCompletionRequest | CompletionRequest
    try:
        if kind == "chat":
            request = ChatCompletionRequest.model_validate(data)
        else:
            request = CompletionRequest.model_validate(data)
    except ValidationError as exc:
        raise invalid_body(exc.errors(include_url=False, include_input=False)) from None

    max_tokens = request.requested_max_tokens
    if max_tokens is not None and max_tokens > limits.max_output_tokens:
        raise bad_request(
            f"{request.max_tokens_param} is {max_tokens}; this gateway allows at most {limits.max_output_tokens}.",
            request.max_tokens_param,
        )
    if isinstance(request, ChatCompletionRequest):
        param = "messages"
        text: str | None = tokenizer.render_chat(data["messages"])
        assert text is not None
        n_tokens, hashes = _text_prompt(text, param)
    else:
        param = "prompt"
        text, n_tokens, hashes = _completion_prompt(request.prompt)
    if n_tokens > limits.max_prompt_tokens:
        raise bad_request(
            f"The prompt has {n_tokens} tokens; this gateway accepts at most {limits.max_prompt_tokens}.", param
        )

    stream = bool(request.stream)
    opts = request.stream_options
    if opts is not None and not stream:
        raise bad_request("Stream options can only be defined when `stream=True`.", "stream_options")
    client_usage = stream and bool(opts is not None and opts.include_usage)
    body = raw if client_usage else upstream_body(raw, data)
    return ParsedRequest(
        kind=kind,
        model=request.model,
        stream=stream,
        prompt_tokens=n_tokens,
        block_hashes=hashes,
        expected_output_tokens=max_tokens,
        prompt_param=param,
        output_param=request.max_tokens_param,
        client_usage=client_usage,
        upstream_body=body,
        text=text if keep_text else None,
    )


def _json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, parsed by pydantic-core's parser (less than half
    ``json.loads``' time on a chat body). Bodies in UTF-16 or UTF-32, or with a byte order mark,
    are taken as ``json.loads`` (and so vLLM) takes them. A string with a lone surrogate escape
    (``"\\ud800"``) has no UTF-8 form, so no upstream could tokenise it: it is refused with a
    400 (``json.loads`` took it, and the request failed later with a 500)."""
    try:
        data = from_json(raw)
    except ValueError:
        encoding = json.detect_encoding(raw)
        try:
            if encoding == "utf-8":
                raise
            data = from_json(raw.decode(encoding))
        except ValueError as error:  # UnicodeDecodeError too
            reason = str(error)
            if reason.startswith("recursion limit exceeded"):
                raise bad_request("The request body is nested too deeply.") from None
            raise bad_request(f"The request body is not valid JSON: {reason}.") from None
    if not isinstance(data, dict):
        raise bad_request(f"The request body must be a JSON object, not {_JSON_TYPES.get(type(data), 'a number')}.")
    return data


def upstream_body(raw: bytes, data: dict[str, Any]) -> bytes:
    """What goes to the instance when the client did not ask for usage itself: ``raw`` as a
    stream with ``include_usage`` on. A client stream without ``stream_options`` (the usual
    case) gets the option appended to its own bytes (the same object; re-encoding it costs
    ~10x more); anything else is re-encoded."""
    if data.get("stream") is True and "stream_options" not in data:
        body = raw.strip()
        if body[:1] == b"{" and body[-1:] == b"}":  # UTF-8 without a byte order mark
            return body[:-1] + b',"stream_options":{"include_usage":true}}'
    return _with_usage(data)


def _with_usage(data: dict[str, Any]) -> bytes:
    """The body as a stream with ``include_usage`` on; ``continuous_usage_stats`` is switched
    off, as it had no effect without ``include_usage`` (vLLM) and would put usage into every
    chunk."""
    opts = data.get("stream_options")
    opts = dict(opts) if isinstance(opts, Mapping) else {}
    opts["include_usage"] = True
    if opts.get("continuous_usage_stats"):
        opts["continuous_usage_stats"] = False
    return json.dumps({**data, "stream": True, "stream_options": opts}, separators=(",", ":")).encode()


def _text_prompt(text: str, param: str) -> tuple[int, list[int]]:
    ids = tokenizer.encode(text)
    if not ids:
        raise bad_request("The prompt cannot be empty.", param)
    prompt = Prompt(n_tokens=len(ids), segments=tokenizer.segment_hashes(ids), segment_tokens=tokenizer.BLOCK_SIZE)
    return prompt.n_tokens, prompt.block_hashes()


def _ids_prompt(ids: Sequence[int]) -> tuple[int, list[int]]:
    if not ids:
        raise bad_request("The prompt cannot be empty.", "prompt")
    prompt = Prompt(n_tokens=len(ids), segments=tokenizer.segment_hashes(ids), segment_tokens=tokenizer.BLOCK_SIZE)
    return prompt.n_tokens, prompt.block_hashes()


def _completion_prompt(prompt: str | list[str] | list[int] | list[list[int]]) -> tuple[str | None, int, list[int]]:
    """(text or None for token ids, total tokens, block hashes of the first prompt)."""
    if isinstance(prompt, str):
        return (prompt, *_text_prompt(prompt, "prompt"))
    if not prompt:
        raise bad_request("The prompt cannot be empty.", "prompt")
    if isinstance(prompt[0], int):
        return (None, *_ids_prompt(prompt))
    parts: list[tuple[int, list[int]]] = []
    for item in prompt:
        if isinstance(item, str):
            parts.append(_text_prompt(item, "prompt"))
        else:
            parts.append(_ids_prompt(item))
    text = "".join(p for p in prompt if isinstance(p, str)) or None
    return text, sum(n for n, _ in parts), parts[0][1]
