"""The HTTP request a workload request becomes: path, JSON body and headers (pure).

The body asks for exactly the workload's output length, the way real vLLM honours it too:
``max_tokens`` = ``min_tokens`` = the request's output tokens and ``ignore_eos: true`` (vLLM's
sampling extras; an OpenAI-compatible server that does not know them ignores them, and the
emulator never stops early anyway). ``stream_options.include_usage`` makes the server report
the output length it produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lodestar.workload.request import RequestSpec

Endpoint = Literal["chat", "completions"]
PATHS: dict[Endpoint, str] = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


@dataclass(frozen=True, slots=True)
class BodyOptions:
    """``model``: overrides the request's own model name; ``exact_length``: send
    ``min_tokens``/``ignore_eos`` (off for servers that reject unknown fields)."""

    endpoint: Endpoint = "completions"
    model: str | None = None
    exact_length: bool = True


def request_body(request: RequestSpec, prompt_text: str, options: BodyOptions) -> dict[str, Any]:
    body: dict[str, Any] = {"model": options.model or request.model}
    if options.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt_text}]
    else:
        body["prompt"] = prompt_text
    body["max_tokens"] = request.output_tokens
    if options.exact_length:
        body["min_tokens"] = request.output_tokens
        body["ignore_eos"] = True
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return body


def request_headers(request: RequestSpec, api_key: str | None, run_id: str) -> dict[str, str]:
    """``x-request-id`` is ``<run_id>-<request id>``: unique across runs of the same workload
    (a gateway or history store may deduplicate on it)."""
    headers = {"content-type": "application/json", "x-request-id": f"{run_id}-{request.request_id}"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers
