"""The one error shape every HTTP service answers with."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Literal

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field, ValidationError, model_validator

from lodestar.openai_errors import (
    OpenAIError,
    context_too_long,
    error_type,
    from_validation_error,
    install_error_handlers,
    invalid_body,
    parse_body,
)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (HTTPStatus.BAD_REQUEST, "BadRequestError"),
        (HTTPStatus.UNAUTHORIZED, "AuthenticationError"),
        (HTTPStatus.NOT_FOUND, "NotFoundError"),
        (HTTPStatus.METHOD_NOT_ALLOWED, "MethodNotAllowedError"),
        (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestTooLargeError"),
        (HTTPStatus.TOO_MANY_REQUESTS, "RateLimitError"),
        (HTTPStatus.INTERNAL_SERVER_ERROR, "InternalServerError"),
        (HTTPStatus.BAD_GATEWAY, "BadGatewayError"),
        (HTTPStatus.SERVICE_UNAVAILABLE, "ServiceUnavailableError"),
        (HTTPStatus.GATEWAY_TIMEOUT, "GatewayTimeoutError"),
    ],
)
def test_each_status_has_openais_type_name(status: HTTPStatus, kind: str) -> None:
    assert error_type(status) == kind
    assert OpenAIError(status, "m").payload() == {
        "error": {"message": "m", "type": kind, "param": None, "code": status}
    }


def test_the_body_is_ascii_json_even_for_a_lone_surrogate() -> None:
    err = OpenAIError(HTTPStatus.NOT_FOUND, "The model `mödel\ud800` does not exist.", "model")
    body = err.body()
    assert body.isascii()
    assert json.loads(body)["error"]["message"] == "The model `mödel\ud800` does not exist."
    assert err.sse() == b"data: " + body + b"\n\ndata: [DONE]\n\n"


def test_the_answer_carries_the_errors_headers_and_the_callers() -> None:
    err = OpenAIError(HTTPStatus.TOO_MANY_REQUESTS, "slow down", headers={"retry-after": "2"})
    response = err.response({"x-request-id": "r1"})
    assert response.status_code == 429 and response.media_type == "application/json"
    assert (response.headers["retry-after"], response.headers["x-request-id"]) == ("2", "r1")
    assert err.error_class == "RateLimitError"  # unless the caller names its own class


def test_context_too_long_names_the_output_field_when_it_asked_for_tokens() -> None:
    no_output = context_too_long(100, 120, None, "messages")
    assert no_output.param == "messages" and "your request has 120 input tokens" in no_output.message
    with_output = context_too_long(100, 90, 20, "messages", "max_completion_tokens")
    assert with_output.param == "max_completion_tokens" and "you requested 110 tokens" in with_output.message


class _Text(BaseModel):
    kind: Literal["text"]
    text: str


class _Image(BaseModel):
    kind: Literal["image"]
    url: str


class _Body(BaseModel):
    prompt: str | list[int]
    part: _Text | _Image = Field(discriminator="kind")
    n: int = 1


def _errors(body: dict[str, Any]) -> list[Any]:
    with pytest.raises(ValidationError) as info:
        _Body.model_validate(body)
    return info.value.errors()


def test_a_value_of_no_union_form_is_named_once_with_the_forms() -> None:
    err = invalid_body(_errors({"prompt": 3.5, "part": {"kind": "text", "text": "x"}}))
    assert err.param == "prompt"
    assert err.message == "prompt: Input should be one of: str, list[int]"


def test_an_unknown_discriminator_names_the_tag_field() -> None:
    err = invalid_body(_errors({"prompt": "p", "part": {"kind": "video"}}))
    assert err.param == "part"
    assert err.message.startswith("part: Input tag 'video' found using 'kind' does not match")


def test_at_most_five_fields_are_named() -> None:
    errors = [{"loc": ("body", f"f{i}"), "msg": "Field required"} for i in range(8)]
    err = invalid_body(errors)
    assert err.message == "; ".join(f"f{i}: Field required" for i in range(5))
    assert err.param == "f0" and err.status is HTTPStatus.BAD_REQUEST


class _Checked(BaseModel):
    low: int
    high: int

    @model_validator(mode="after")
    def _ordered(self) -> _Checked:
        if self.low > self.high:
            raise ValueError("low must not exceed high")
        return self


def test_a_validators_own_message_comes_without_pydantics_prefix() -> None:
    with pytest.raises(ValidationError) as info:
        _Checked.model_validate({"low": 2, "high": 1})
    assert info.value.errors()[0]["msg"] == "Value error, low must not exceed high"
    assert from_validation_error(info.value).message == "low must not exceed high"


def test_parse_body_names_the_field() -> None:
    with pytest.raises(OpenAIError) as info:
        parse_body(_Body, b'{"prompt": "p", "part": {"kind": "text", "text": "x"}, "n": "many"}')
    assert (info.value.param, info.value.status) == ("n", HTTPStatus.BAD_REQUEST)
    assert parse_body(_Body, b'{"prompt": [1], "part": {"kind": "image", "url": "u"}}').prompt == [1]


def _app(catch_unexpected: bool) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app, catch_unexpected=catch_unexpected)

    @app.post("/body")
    async def body(b: _Body) -> dict[str, int]:
        return {"n": b.n}

    @app.get("/refuse")
    async def refuse() -> None:
        raise OpenAIError(HTTPStatus.SERVICE_UNAVAILABLE, "no instance", "model")

    @app.get("/bug")
    async def bug() -> None:
        raise RuntimeError("secret detail")

    return app


def test_installed_handlers_answer_every_error_in_the_shape() -> None:
    client = TestClient(_app(catch_unexpected=True), raise_server_exceptions=False)
    invalid = client.post("/body", json={"prompt": "p"})
    assert invalid.status_code == 400 and invalid.json()["error"]["param"] == "part"
    refused = client.get("/refuse")
    assert refused.status_code == 503 and refused.json()["error"]["type"] == "ServiceUnavailableError"
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFoundError"
    wrong_method = client.delete("/refuse")
    assert wrong_method.status_code == 405 and wrong_method.headers["allow"] == "GET"
    bug = client.get("/bug")
    assert bug.status_code == 500 and bug.json()["error"]["message"] == "internal error: RuntimeError"


def test_without_catch_unexpected_a_bug_is_not_turned_into_an_answer() -> None:
    client = TestClient(_app(catch_unexpected=False))
    with pytest.raises(RuntimeError, match="secret detail"):
        client.get("/bug")
