"""Error answers with an OpenAI-style body: ``{"error": {"message", "type", "param", "code"}}``
(``code`` is the HTTP status, as vLLM answers).

Handlers raise :class:`ApiError`; :func:`install_error_handlers` turns it, FastAPI's request
validation errors (400, not FastAPI's 422), Starlette's HTTP errors (404, 405) and unexpected
exceptions (500, logged) into that body, so the gateway and operators always read one shape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lodestar.ascii_json import AsciiJSONResponse

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

_TYPES = {
    HTTPStatus.BAD_REQUEST: "BadRequestError",
    HTTPStatus.UNAUTHORIZED: "AuthenticationError",
    HTTPStatus.NOT_FOUND: "NotFoundError",
    HTTPStatus.METHOD_NOT_ALLOWED: "MethodNotAllowedError",
    HTTPStatus.INTERNAL_SERVER_ERROR: "InternalServerError",
    HTTPStatus.SERVICE_UNAVAILABLE: "ServiceUnavailableError",
}


class ApiError(Exception):
    """An error answer: ``status`` with a body naming ``param`` (the offending field) if known."""

    def __init__(
        self,
        status: HTTPStatus,
        message: str,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        kind = _TYPES.get(self.status, self.status.phrase.replace(" ", "") + "Error")
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.status.value}}

    def response(self) -> JSONResponse:
        return AsciiJSONResponse(self.body(), status_code=self.status.value, headers=self.headers)


def bad_request(message: str, param: str | None = None) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, message, param)


def invalid_body(errors: Sequence[Any]) -> ApiError:
    """A 400 naming every invalid field (``block_hashes.3: Input should be ...``)."""
    parts: list[str] = []
    first: str | None = None
    for err in errors:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        if first is None and loc:
            first = loc
        msg = str(err.get("msg", "invalid"))
        parts.append(f"{loc}: {msg}" if loc else msg)
    return bad_request("; ".join(parts[:5]) or "invalid request body", first)


def from_validation_error(exc: ValidationError) -> ApiError:
    return invalid_body(exc.errors(include_url=False, include_input=False))


def parse_body(model: type[M], body: bytes) -> M:
    """``body`` (JSON, whatever the content type) as ``model``; a 400 naming the field otherwise."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def internal_error(exc: Exception) -> JSONResponse:
    """The 500 for an unexpected exception (a bug): its type is named, its message is not."""
    return ApiError(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(exc).__name__}").response()


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return exc.response()

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return invalid_body(exc.errors()).response()

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        status = HTTPStatus(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else status.phrase
        return ApiError(status, detail, headers=exc.headers).response()

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return internal_error(exc)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
