"""The gateway's own error answers, in OpenAI's shape: ``{"error": {"message", "type", "param",
"code"}}`` with ``code`` the HTTP status (as vLLM answers), as a JSON body or — once a stream
has started — as one SSE event followed by ``data: [DONE]``.

Messages name fields and limits, never prompt or completion text. Upstream errors are not
built here: they are passed through as the instance sent them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

JSON = "application/json"
DONE = b"data: [DONE]\n\n"

_TYPES = {
    HTTPStatus.BAD_REQUEST: "BadRequestError",
    HTTPStatus.UNAUTHORIZED: "AuthenticationError",
    HTTPStatus.NOT_FOUND: "NotFoundError",
    HTTPStatus.METHOD_NOT_ALLOWED: "MethodNotAllowedError",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "RequestTooLargeError",
    HTTPStatus.TOO_MANY_REQUESTS: "RateLimitError",
    HTTPStatus.INTERNAL_SERVER_ERROR: "InternalServerError",
    HTTPStatus.BAD_GATEWAY: "BadGatewayError",
    HTTPStatus.SERVICE_UNAVAILABLE: "ServiceUnavailableError",
    HTTPStatus.GATEWAY_TIMEOUT: "GatewayTimeoutError",
}


class GatewayError(Exception):
    """An error answer: ``status`` with a body naming ``param`` (the offending field) if known.
    ``error_class`` is the short name recorded in outcome events and metrics."""

    def __init__(
        self, status: HTTPStatus, message: str, param: str | None = None, error_class: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.error_class = error_class or _TYPES.get(status, "GatewayError")

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer must carry (``Retry-After``...); none by default."""
        return {}

    def payload(self) -> dict[str, Any]:
        kind = _TYPES.get(self.status, self.status.phrase.replace(" ", "") + "Error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.status.value}}

    def body(self) -> bytes:
        return json.dumps(self.payload()).encode()

    def sse(self) -> bytes:
        """The error as the last events of a stream: ``data: {"error": ...}`` then ``[DONE]``."""
        return b"data: " + self.body() + b"\n\n" + DONE

    def response(self, headers: dict[str, str] | None = None) -> Response:
        return Response(
            self.body(), status_code=self.status.value, media_type=JSON, headers={**self.headers, **(headers or {})}
        )


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(HTTPStatus.BAD_REQUEST, message, param, "invalid_request")


#: pydantic's names of union members in error locations (``prompt.list[int].0``): not fields
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|[a-z-]+\[.*\])$")


def invalid_body(errors: Sequence[Any]) -> GatewayError:
    """A 400 naming every invalid field (``messages.0.role: Field required``), first five;
    a value that matches no form of a union is reported once, at the field, with the forms."""
    parts: dict[str, str] = {}
    forms: dict[str, list[str]] = {}
    for err in errors:
        raw = [str(p) for p in err.get("loc", ()) if p != "body"]
        tag = next((i for i, p in enumerate(raw) if _UNION_TAG.match(p)), None)
        if tag is None:
            parts.setdefault(".".join(raw), str(err.get("msg", "invalid")))
            continue
        loc = ".".join(raw[:tag])
        if raw[tag] not in forms.setdefault(loc, []):
            forms[loc].append(raw[tag])
        parts[loc] = "Input should be one of: " + ", ".join(forms[loc])
    first = next((loc for loc in parts if loc), None)
    text = "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in list(parts.items())[:5])
    return bad_request(text or "invalid request body", first)


def model_not_found(model: str) -> GatewayError:
    return GatewayError(HTTPStatus.NOT_FOUND, f"The model `{model}` does not exist.", "model", "model_not_found")


def no_instance(model: str, why: str) -> GatewayError:
    return GatewayError(
        HTTPStatus.SERVICE_UNAVAILABLE, f"No instance can serve model `{model}` now: {why}", "model", "no_instance"
    )


def context_too_long(
    limit: int, prompt_tokens: int, max_tokens: int | None, prompt_param: str, output_param: str = "max_tokens"
) -> GatewayError:
    """vLLM's message for a request that fits no instance's ``max_model_len``."""
    if max_tokens is None:
        return bad_request(
            f"This model's maximum context length is {limit} tokens. However, your request has "
            f"{prompt_tokens} input tokens. Please reduce the length of the input messages.",
            prompt_param,
        )
    return bad_request(
        f"This model's maximum context length is {limit} tokens. However, you requested "
        f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
        f"completion). Please reduce the length of the messages or completion.",
        output_param,
    )


def install_error_handlers(app: FastAPI) -> None:
    """GatewayError, FastAPI's validation errors (400) and Starlette's 404/405 → OpenAI bodies."""

    async def on_gateway_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return exc.response()

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return invalid_body(exc.errors()).response()

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = HTTPStatus(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else status.phrase
        return GatewayError(status, detail).response(dict(exc.headers or {}))

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
