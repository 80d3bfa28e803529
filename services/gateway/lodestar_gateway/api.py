"""The gateway's HTTP API: OpenAI-compatible routes plus ``/health`` and ``/metrics``.

- ``POST /v1/chat/completions``, ``POST /v1/completions`` (streamed or not): the client is
  admitted (:class:`~lodestar_gateway.access.Access`: 401 without a configured API key, 429
  with ``Retry-After`` past its rate) before the body is read (at most ``max_body_bytes``:
  413), parsed and checked (400 naming the field); a stream takes one of the client's stream
  slots (429 when none is free). Then an :class:`~lodestar_gateway.exchange.Exchange` serves it.
- ``GET /v1/models``: every model some known instance serves (API key and rate as above);
  ``GET /v1/models/{model}`` one of them (404 in OpenAI's shape for a model none serves).
- ``GET /health``, ``GET /metrics`` (Prometheus text), ``GET /openapi.json``: open.

Every answer to a completion request carries ``X-Request-Id``: the client's (if it is 1-128
characters of ``[A-Za-z0-9._:-]``) or a new one. Only requests that pass validation get an
outcome event (invalid ones have no model to report); all are counted in metrics.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from http import HTTPStatus

import structlog
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

from lodestar.openai_errors import JSON, OpenAIError, install_error_handlers, model_not_found
from lodestar.openapi_doc import Operation, document
from lodestar.serving import HotRoutes
from lodestar_gateway.exchange import Exchange, Proxy
from lodestar_gateway.fleet import ServedModel
from lodestar_gateway.inputs import Kind, Limits, parse_request
from lodestar_gateway.metrics import CONTENT_TYPE
from lodestar_gateway.protocol import ChatCompletionRequest, CompletionRequest
from lodestar_schemas.router_api import RouteRequest

log = structlog.get_logger(__name__)

_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}")
_HEADER_VALUE_MAX = 256


class Health(BaseModel):
    status: str
    instances: int
    healthy_instances: int
    router: str
    inflight_requests: int
    pending_events: int
    pending_feedback: int


def request_id_of(header: str | None) -> str:
    """The client's ``X-Request-Id`` if valid, else a new id: 128 random bits as 32 hex digits
    (the shape of ``uuid4().hex``, without building a ``UUID``: on the request's path, and after
    an idle gap ``uuid4().hex`` took ~90 µs here against ~25 µs)."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return os.urandom(16).hex()


def _header(request: Request, name: str) -> str | None:
    value = request.headers.get(name)
    return value[:_HEADER_VALUE_MAX] if value else None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body; 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def _too_large(limit: int) -> OpenAIError:
    return OpenAIError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"The request body exceeds {limit} bytes.", None, "body_too_large"
    )


def _internal_error(_: Exception) -> Response:
    return OpenAIError(HTTPStatus.INTERNAL_SERVER_ERROR, "internal gateway error").response()


def build_app(proxy: Proxy, health: Callable[[], Health]) -> HotRoutes:
    """The FastAPI app behind :class:`~lodestar.serving.HotRoutes` for the two completion paths
    (their handlers answer every refusal themselves and the exchange catches its own failures)."""
    app = FastAPI(title="Lodestar gateway", docs_url=None, redoc_url=None)
    install_error_handlers(app)
    settings = proxy.settings
    access = proxy.access
    limits = Limits(settings.max_prompt_tokens, settings.max_output_tokens)
    created = int(time.time())

    async def serve(request: Request, kind: Kind) -> Response:
        start_s = time.perf_counter()
        rid = request_id_of(request.headers.get("x-request-id"))
        release: Callable[[], None] | None = None
        try:
            client = access.admit(request.headers.get("authorization"), request.headers.get("api-key"))
            raw = await read_body(request, settings.max_body_bytes)
            parsed = parse_request(kind, raw, limits, keep_text=settings.log_text)
            parsed_s = time.perf_counter()
            if parsed.stream:
                release = access.open_stream(client)
        except OpenAIError as exc:
            endpoint = "chat" if kind == "chat" else "completions"
            proxy.metrics.requests.labels(endpoint, "error", str(exc.status.value)).inc()
            log.info("request_refused", request_id=rid, http_status=exc.status.value, error_class=exc.error_class)
            return exc.response({"x-request-id": rid})
        if settings.log_text:
            log.info("request_text", request_id=rid, model=parsed.model, text=parsed.text)
        route_request = RouteRequest(
            request_id=rid,
            model=parsed.model,
            prompt_tokens=parsed.prompt_tokens,
            block_hashes=parsed.block_hashes,
            expected_output_tokens=parsed.expected_output_tokens,
            tenant=_header(request, "x-tenant-id"),
            session_id=_header(request, "x-session-id"),
        )
        return Exchange(proxy, parsed, route_request, start_s, parsed_s, release)

    async def chat_completions(request: Request) -> Response:
        return await serve(request, "chat")

    async def completions(request: Request) -> Response:
        return await serve(request, "completion")

    app.add_route("/v1/chat/completions", chat_completions, methods=["POST"], include_in_schema=False)
    app.add_route("/v1/completions", completions, methods=["POST"], include_in_schema=False)
    errors = (400, 401, 404, 413, 429, 502, 503, 504)
    document(
        app,
        [
            Operation("/v1/chat/completions", "post", ChatCompletionRequest, None, "OpenAI chat completions", errors),
            Operation("/v1/completions", "post", CompletionRequest, None, "OpenAI completions", errors),
        ],
    )

    def card(served: ServedModel) -> dict[str, object]:
        out: dict[str, object] = {"id": served.model, "object": "model", "created": created, "owned_by": "lodestar"}
        if served.max_model_len is not None:
            out["max_model_len"] = served.max_model_len
        return out

    @app.get("/v1/models")
    async def models(request: Request) -> Response:
        try:
            access.admit(request.headers.get("authorization"), request.headers.get("api-key"))
        except OpenAIError as exc:
            return exc.response()
        data = [card(served) for served in proxy.fleet.models()]
        return Response(json.dumps({"object": "list", "data": data}), media_type=JSON)

    # {model:path}: a model name may hold slashes (meta-llama/Meta-Llama-3-8B-Instruct)
    @app.get("/v1/models/{model:path}")
    async def model(request: Request, model: str) -> Response:
        try:
            access.admit(request.headers.get("authorization"), request.headers.get("api-key"))
            served = next((m for m in proxy.fleet.models() if m.model == model), None)
            if served is None:
                raise model_not_found(model)
        except OpenAIError as exc:
            return exc.response()
        return Response(json.dumps(card(served)), media_type=JSON)

    @app.get("/health")
    async def get_health() -> Health:
        return health()

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(proxy.metrics.render(), media_type=CONTENT_TYPE)

    hot = {"/v1/chat/completions": chat_completions, "/v1/completions": completions}
    return HotRoutes(app, hot, _internal_error)
