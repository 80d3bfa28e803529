"""OpenAI request parsing as the emulator does it: models, prompts, output length, errors."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from pydantic import ValidationError

from lodestar import tokenizer
from lodestar.emulator.prompts import block_hashes, chat_prompt, completion_prompt, resolve_max_tokens
from lodestar.emulator.protocol import ChatCompletionRequest, CompletionRequest
from lodestar.openai_errors import OpenAIError, invalid_body

VOCAB = 128_256
MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there, emulator"}]


def _error_of(model: type[ChatCompletionRequest] | type[CompletionRequest], body: dict[str, Any]) -> OpenAIError:
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    return invalid_body(info.value.errors())


@pytest.mark.parametrize(
    ("case", "body", "param", "fragment"),
    [
        ("missing messages", {"model": "m"}, "messages", "Field required"),
        ("messages not a list", {"messages": "hi"}, "messages", "valid list"),
        ("empty messages", {"messages": []}, "messages", "at least 1"),
        ("message without role", {"messages": [{"content": "x"}]}, "messages.0.role", "Field required"),
        ("negative max_tokens", {"messages": MSGS, "max_tokens": -3}, "max_tokens", "greater than or equal to 1"),
        ("zero max_completion_tokens", {"messages": MSGS, "max_completion_tokens": 0}, "max_completion_tokens", ">="),
        ("max_tokens not a number", {"messages": MSGS, "max_tokens": "many"}, "max_tokens", "valid integer"),
        ("stream not a bool", {"messages": MSGS, "stream": "often"}, "stream", "valid boolean"),
        ("stream_options without stream", {"messages": MSGS, "stream_options": {}}, None, "stream=True"),
        ("n > 1", {"messages": MSGS, "n": 2}, "n", "n: n=2: the emulator serves one choice"),
    ],
)
def test_invalid_chat_bodies_name_the_field(case: str, body: dict[str, Any], param: str | None, fragment: str) -> None:
    err = _error_of(ChatCompletionRequest, body)
    assert err.status is HTTPStatus.BAD_REQUEST
    error = err.payload()["error"]
    assert (error["type"], error["code"]) == ("BadRequestError", 400)
    if param is not None:
        assert error["param"] == param, case
    if fragment != ">=":
        assert fragment in error["message"], case
    assert "Value error" not in error["message"]  # pydantic's prefix of a validator's message


@pytest.mark.parametrize(
    ("case", "body", "param"),
    [
        ("missing prompt", {"max_tokens": 3}, "prompt"),
        ("prompt of floats", {"prompt": [1.5, 2.5]}, "prompt"),
        ("negative max_tokens", {"prompt": "hi", "max_tokens": -1}, "max_tokens"),
    ],
)
def test_invalid_completion_bodies_name_the_field(case: str, body: dict[str, Any], param: str) -> None:
    err = _error_of(CompletionRequest, body)
    assert err.param is not None
    assert err.param.startswith(param), case


def test_unknown_fields_are_kept() -> None:
    req = ChatCompletionRequest.model_validate({"messages": MSGS, "temperature": 0.2, "vendor_x": {"a": 1}})
    assert req.model_extra == {"temperature": 0.2, "vendor_x": {"a": 1}}
    msg = ChatCompletionRequest.model_validate({"messages": [{"role": "user", "content": "x", "name": "bob"}]})
    assert msg.messages[0].model_extra == {"name": "bob"}


@pytest.mark.parametrize(
    ("max_tokens", "max_completion_tokens", "expected"),
    [(None, None, None), (7, None, 7), (None, 9, 9), (7, 9, 9)],
)
def test_max_completion_tokens_wins_over_max_tokens(
    max_tokens: int | None, max_completion_tokens: int | None, expected: int | None
) -> None:
    req = ChatCompletionRequest(messages=MSGS, max_tokens=max_tokens, max_completion_tokens=max_completion_tokens)  # type: ignore[arg-type]
    assert req.requested_max_tokens == expected


def test_completions_default_to_16_tokens_as_vllm() -> None:
    assert CompletionRequest.model_validate({"prompt": "hi"}).requested_max_tokens == 16
    assert CompletionRequest.model_validate({"prompt": "hi", "max_tokens": None}).requested_max_tokens is None


def test_chat_prompt_counts_the_rendered_template() -> None:
    req = ChatCompletionRequest.model_validate({"messages": MSGS})
    prompt = chat_prompt(req)
    assert prompt.n_tokens == tokenizer.count_tokens(tokenizer.render_chat(MSGS))
    parts = ChatCompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "hello there, emulator"}]}]}
    )
    assert chat_prompt(parts).n_tokens == tokenizer.count_tokens(
        tokenizer.render_chat([{"role": "user", "content": "hello there, emulator"}])
    )


@pytest.mark.parametrize(
    ("prompt", "n_tokens"),
    [
        ("the quick brown fox", 4),
        (["the quick brown fox"], 4),
        (list(range(40)), 40),
        ([list(range(40))], 40),
    ],
)
def test_completion_prompt_forms(prompt: Any, n_tokens: int) -> None:
    assert completion_prompt(CompletionRequest(prompt=prompt), VOCAB).n_tokens == n_tokens


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ("", "cannot be empty"),
        ([], "cannot be empty"),
        (["a", "b"], "one prompt per request"),
        ([[1, 2], [3]], "one prompt per request"),
        ([1, VOCAB], "out of vocabulary"),
        ([-1], "out of vocabulary"),
    ],
)
def test_bad_completion_prompts_are_400(prompt: Any, fragment: str) -> None:
    with pytest.raises(OpenAIError) as info:
        completion_prompt(CompletionRequest(prompt=prompt), VOCAB)
    assert info.value.status is HTTPStatus.BAD_REQUEST
    assert info.value.param == "prompt"
    assert fragment in info.value.message


def test_token_id_prompts_share_prefix_blocks_like_text() -> None:
    ids = list(range(64))
    a = completion_prompt(CompletionRequest(prompt=ids), VOCAB)
    b = completion_prompt(CompletionRequest(prompt=[*ids[:48], 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]), VOCAB)
    ha, hb = block_hashes(a, 16), block_hashes(b, 16)
    assert len(ha) == len(hb) == 4
    assert ha[:3] == hb[:3] and ha[3] != hb[3]


def test_block_sizes_that_do_not_divide_16_disable_prefix_hashes() -> None:
    prompt = completion_prompt(CompletionRequest(prompt=list(range(64))), VOCAB)
    assert block_hashes(prompt, 32) == []
    assert len(block_hashes(prompt, 8)) == 8


@pytest.mark.parametrize(
    ("requested", "prompt", "limit", "default", "expected"),
    [
        (5, 10, 100, 128, 5),
        (500, 10, 100, 128, 500),  # too long: left for the engine to reject
        (None, 10, 100, 128, 90),  # default capped by the room left
        (None, 10, 1000, 128, 128),
    ],
)
def test_resolve_max_tokens(requested: int | None, prompt: int, limit: int, default: int, expected: int) -> None:
    assert resolve_max_tokens(requested, prompt, limit, default, "messages") == expected


def test_a_prompt_that_fills_the_context_is_rejected_without_max_tokens() -> None:
    with pytest.raises(OpenAIError) as info:
        resolve_max_tokens(None, 100, 100, 128, "messages")
    assert info.value.status is HTTPStatus.BAD_REQUEST
    assert info.value.param == "messages"
    assert "maximum context length is 100 tokens" in info.value.message
