"""Errors as vLLM returns them: an HTTP status and an OpenAI error body.

Handlers raise :class:`OpenAIError`; :func:`install_error_handlers` turns it, and FastAPI's
request validation errors (400, as vLLM answers them, not FastAPI's 422), into
``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from lodestar.ascii_json import AsciiJSONResponse
from lodestar.emulator.protocol import ErrorInfo, ErrorResponse

_TYPES = {
    HTTPStatus.BAD_REQUEST: "BadRequestError",
    HTTPStatus.NOT_FOUND: "NotFoundError",
    HTTPStatus.INTERNAL_SERVER_ERROR: "InternalServerError",
    HTTPStatus.SERVICE_UNAVAILABLE: "ServiceUnavailableError",
}


class OpenAIError(Exception):
    """An error answer: ``status`` with an OpenAI error body naming ``param`` when known."""

    def __init__(self, status: HTTPStatus, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param

    def body(self) -> ErrorResponse:
        kind = _TYPES.get(self.status, self.status.phrase.replace(" ", "") + "Error")
        return ErrorResponse(error=ErrorInfo(message=self.message, type=kind, param=self.param, code=self.status.value))

    def response(self) -> Response:
        """As ASCII JSON: the message may quote the client's input (an unknown model's name)."""
        return AsciiJSONResponse(self.body().model_dump(), status_code=self.status.value)


def bad_request(message: str, param: str | None = None) -> OpenAIError:
    return OpenAIError(HTTPStatus.BAD_REQUEST, message, param)


def model_not_found(name: str) -> OpenAIError:
    return OpenAIError(HTTPStatus.NOT_FOUND, f"The model `{name}` does not exist.", "model")


def context_too_long(limit: int, prompt_tokens: int, max_tokens: int | None, prompt_param: str) -> OpenAIError:
    """vLLM's message for a request that does not fit ``max_model_len``."""
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
        "max_tokens",
    )


def validation_error(errors: Sequence[Any]) -> OpenAIError:
    """A 400 naming every invalid field (``messages.0.role: Field required``)."""
    parts: list[str] = []
    first_param: str | None = None
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc) or str(err.get("ctx", {}).get("discriminator", "")).strip("'")
        if first_param is None and where:
            first_param = where
        msg = str(err.get("msg", "invalid"))
        parts.append(f"{where}: {msg}" if where else msg)
    return bad_request("; ".join(parts) or "invalid request body", first_param)


def install_error_handlers(app: FastAPI) -> None:
    async def on_openai_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, OpenAIError)
        return exc.response()

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return validation_error(exc.errors()).response()

    app.add_exception_handler(OpenAIError, on_openai_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
