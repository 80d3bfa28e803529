"""Error answers in OpenAI's shape, for every HTTP service of the project (gateway, router,
emulator, history, collector, trainer): ``{"error": {"message", "type", "param", "code"}}``
with ``code`` the HTTP status, as vLLM answers.

Handlers raise :class:`OpenAIError`; :func:`install_error_handlers` turns it, FastAPI's request
validation errors (400 naming every invalid field, as vLLM answers, not FastAPI's 422) and
Starlette's HTTP errors (404, 405) into that body, and with ``catch_unexpected`` any other
exception into a logged 500. Bodies are ASCII JSON: a message may quote the client's input (an
unknown model's name), and a string decoded from a lone surrogate escape has no UTF-8 form.
Messages name fields and limits, never prompt or completion text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, TypeVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lodestar.ascii_json import ascii_json

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

JSON = "application/json"
DONE = b"data: [DONE]\n\n"

#: OpenAI's error type names where they are not the status's phrase (``BadRequestError``,
#: ``NotFoundError``, ``ServiceUnavailableError``...)
ERROR_TYPES = {
    HTTPStatus.UNAUTHORIZED: "AuthenticationError",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "RequestTooLargeError",
    HTTPStatus.TOO_MANY_REQUESTS: "RateLimitError",
}

#: fields named in at most this many parts of one message
MAX_FIELDS = 5


def error_type(status: HTTPStatus) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    name = status.phrase.replace(" ", "")
    return name if name.endswith("Error") else name + "Error"


class OpenAIError(Exception):
    """An error answer: ``status`` with a body naming ``param`` (the offending field) if known.
    ``error_class`` is the short name the gateway records in outcome events and metrics."""

    def __init__(
        self,
        status: HTTPStatus,
        message: str,
        param: str | None = None,
        error_class: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.error_class = error_class or error_type(status)
        self._headers = dict(headers or {})

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer must carry (``Retry-After``...)."""
        return self._headers

    def payload(self) -> dict[str, Any]:
        error = {"message": self.message, "type": error_type(self.status), "param": self.param}
        return {"error": {**error, "code": self.status.value}}

    def body(self) -> bytes:
        return ascii_json(self.payload())

    def sse(self) -> bytes:
        """The error as the last events of a stream: ``data: {"error": ...}`` then ``[DONE]``."""
        return b"data: " + self.body() + b"\n\n" + DONE

    def response(self, headers: Mapping[str, str] | None = None) -> Response:
        return Response(
            self.body(), status_code=self.status.value, media_type=JSON, headers={**self.headers, **(headers or {})}
        )


def bad_request(message: str, param: str | None = None) -> OpenAIError:
    return OpenAIError(HTTPStatus.BAD_REQUEST, message, param, "invalid_request")


def model_not_found(model: str) -> OpenAIError:
    return OpenAIError(HTTPStatus.NOT_FOUND, f"The model `{model}` does not exist.", "model", "model_not_found")


def context_too_long(
    limit: int, prompt_tokens: int, max_tokens: int | None, prompt_param: str, output_param: str = "max_tokens"
) -> OpenAIError:
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
        output_param,
    )


#: pydantic's names of union members in error locations (``prompt.list[int].0``): not fields
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|[a-z-]+\[.*\])$")


def invalid_body(errors: Sequence[Any]) -> OpenAIError:
    """A 400 naming every invalid field (``messages.0.role: Field required``), the first
    :data:`MAX_FIELDS`; a value that matches no form of a union is reported once, at the field,
    with the forms; an unknown tag of a discriminated union at the top names the tag's field."""
    parts: dict[str, str] = {}
    forms: dict[str, list[str]] = {}
    for err in errors:
        raw = [str(p) for p in err.get("loc", ()) if p != "body"]
        tag = next((i for i, p in enumerate(raw) if _UNION_TAG.match(p)), None)
        if tag is None:
            loc = ".".join(raw) or str(err.get("ctx", {}).get("discriminator", "")).strip("'")
            parts.setdefault(loc, _message(err))
            continue
        loc = ".".join(raw[:tag])
        if raw[tag] not in forms.setdefault(loc, []):
            forms[loc].append(raw[tag])
        parts[loc] = "Input should be one of: " + ", ".join(forms[loc])
    first = next((loc for loc in parts if loc), None)
    text = "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in list(parts.items())[:MAX_FIELDS])
    return bad_request(text or "invalid request body", first)


#: what pydantic puts before the message of a validator's ValueError (``Value error, n=2: …``)
_VALUE_ERROR_PREFIX = "Value error, "


def _message(err: Mapping[str, Any]) -> str:
    """The error's message, without pydantic's prefix on a validator's own words."""
    msg = str(err.get("msg", "invalid"))
    return msg.removeprefix(_VALUE_ERROR_PREFIX) if err.get("type") == "value_error" else msg


def from_validation_error(exc: ValidationError) -> OpenAIError:
    return invalid_body(exc.errors(include_url=False, include_input=False))


def parse_body(model: type[M], body: bytes) -> M:
    """``body`` (JSON, whatever the content type) as ``model``; a 400 naming the field otherwise."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise from_validation_error(exc) from None


def internal_error(exc: Exception) -> Response:
    """The 500 for an unexpected exception (a bug): its type is named, its message is not."""
    return OpenAIError(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {type(exc).__name__}").response()


def install_error_handlers(app: FastAPI, catch_unexpected: bool = False) -> None:
    """OpenAIError, FastAPI's validation errors (400) and Starlette's 404/405 → OpenAI bodies;
    with ``catch_unexpected`` any other exception → a 500 (logged)."""

    async def on_openai_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, OpenAIError)
        return exc.response()

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return invalid_body(exc.errors()).response()

    async def on_http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = HTTPStatus(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) else status.phrase
        return OpenAIError(status, detail, headers=exc.headers).response()

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled_error", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
        return internal_error(exc)

    app.add_exception_handler(OpenAIError, on_openai_error)
    if catch_unexpected:
        app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
