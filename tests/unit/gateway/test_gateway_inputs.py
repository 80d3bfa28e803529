"""Request parsing at the gateway: every 4xx path names its field, limits, token counts and
block hashes equal the project tokenizer's, and the upstream body keeps what the client sent."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import pytest

from lodestar import tokenizer
from lodestar.openai_errors import OpenAIError
from lodestar.workload.request import Prompt
from lodestar_gateway.inputs import Kind, Limits, parse_request

LIMITS = Limits(max_prompt_tokens=200, max_output_tokens=1000)
MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there, gateway"}]
LONG = "word " * 300  # 300 tokens
FOX = "the quick brown fox " * 10


def _parse(kind: Kind, body: Any, limits: Limits = LIMITS) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return parse_request(kind, raw, limits)


def _error(kind: Kind, body: Any) -> OpenAIError:
    with pytest.raises(OpenAIError) as info:
        _parse(kind, body)
    return info.value


@pytest.mark.parametrize(
    ("case", "kind", "body", "param", "fragment"),
    [
        ("not JSON", "chat", b"{nope", None, "not valid JSON"),
        ("an array", "chat", b"[1, 2]", None, "must be a JSON object, not an array"),
        ("null", "chat", b"null", None, "must be a JSON object, not null"),
        ("a number", "completion", b"1.5", None, "must be a JSON object, not a number"),
        ("a string", "chat", b'"hi"', None, "must be a JSON object, not a string"),
        ("missing model", "chat", {"messages": MSGS}, "model", "Field required"),
        ("empty model", "chat", {"model": "", "messages": MSGS}, "model", "at least 1"),
        ("model too long", "chat", {"model": "m" * 257, "messages": MSGS}, "model", "at most 256"),
        ("model not a string", "chat", {"model": 7, "messages": MSGS}, "model", "valid string"),
        ("missing messages", "chat", {"model": "m"}, "messages", "Field required"),
        ("messages not a list", "chat", {"model": "m", "messages": "hi"}, "messages", "valid list"),
        ("empty messages", "chat", {"model": "m", "messages": []}, "messages", "at least 1"),
        ("message without role", "chat", {"model": "m", "messages": [{"content": "x"}]}, "messages.0.role", "required"),
        (
            "content a number",
            "chat",
            {"model": "m", "messages": [{"role": "user", "content": 5}]},
            "messages.0.content",
            "",
        ),
        ("stream not a bool", "chat", {"model": "m", "messages": MSGS, "stream": "yes"}, "stream", "valid boolean"),
        (
            "max_tokens zero",
            "chat",
            {"model": "m", "messages": MSGS, "max_tokens": 0},
            "max_tokens",
            "greater than or equal to 1",
        ),
        ("max_tokens text", "chat", {"model": "m", "messages": MSGS, "max_tokens": "9"}, "max_tokens", "valid integer"),
        (
            "max_tokens over limit",
            "chat",
            {"model": "m", "messages": MSGS, "max_tokens": 1001},
            "max_tokens",
            "at most 1000",
        ),
        (
            "max_completion_tokens over limit",
            "chat",
            {"model": "m", "messages": MSGS, "max_completion_tokens": 5000},
            "max_completion_tokens",
            "at most 1000",
        ),
        (
            "include_usage not a bool",
            "chat",
            {"model": "m", "messages": MSGS, "stream": True, "stream_options": {"include_usage": "y"}},
            "stream_options.include_usage",
            "valid boolean",
        ),
        (
            "empty rendered prompt is not possible; long prompt",
            "chat",
            {"model": "m", "messages": [{"role": "user", "content": LONG}]},
            "messages",
            "at most 200",
        ),
        ("missing prompt", "completion", {"model": "m"}, "prompt", "Field required"),
        ("prompt of floats", "completion", {"model": "m", "prompt": [1.5]}, "prompt", ""),
        ("negative token id", "completion", {"model": "m", "prompt": [1, -1]}, "prompt", ""),  # found by fuzzing
        ("token id over 32 bits", "completion", {"model": "m", "prompt": [[2**32]]}, "prompt", ""),
        ("empty prompt", "completion", {"model": "m", "prompt": ""}, "prompt", "cannot be empty"),
        ("empty prompt list", "completion", {"model": "m", "prompt": []}, "prompt", "cannot be empty"),
        ("empty token list in a batch", "completion", {"model": "m", "prompt": [[1, 2], []]}, "prompt", "empty"),
        ("long prompt", "completion", {"model": "m", "prompt": LONG}, "prompt", "at most 200"),
        ("long token prompt", "completion", {"model": "m", "prompt": list(range(201))}, "prompt", "201 tokens"),
        (
            "completion max_tokens over limit",
            "completion",
            {"model": "m", "prompt": "hi", "max_tokens": 2000},
            "max_tokens",
            "at most 1000",
        ),
    ],
)
def test_bad_requests_get_a_400_naming_the_field(
    case: str, kind: Kind, body: Any, param: str | None, fragment: str
) -> None:
    err = _error(kind, body)
    assert err.status is HTTPStatus.BAD_REQUEST, case
    payload = err.payload()["error"]
    assert (payload["type"], payload["code"]) == ("BadRequestError", 400), case
    assert payload["param"] == param, (case, payload)
    assert fragment in payload["message"], (case, payload["message"])
    assert set(payload) == {"message", "type", "param", "code"}


def test_error_messages_never_quote_the_prompt() -> None:
    secret = "the launch code is swordfish"
    err = _error("chat", {"model": "m", "messages": [{"role": "user", "content": secret + " x" * 400}]})
    assert "swordfish" not in err.message
    err = _error("chat", {"model": 5, "messages": [{"role": "user", "content": secret}]})
    assert "swordfish" not in err.message


def test_chat_tokens_and_block_hashes_equal_the_project_tokenizer() -> None:
    messages = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 20}]
    parsed = _parse("chat", {"model": "m", "messages": messages}, Limits(10_000, 10))
    text = tokenizer.render_chat(messages)
    expected = Prompt.from_text(text)
    assert parsed.prompt_tokens == len(tokenizer.encode(text)) == expected.n_tokens
    assert parsed.block_hashes == expected.block_hashes()
    assert len(parsed.block_hashes) == parsed.prompt_tokens // tokenizer.BLOCK_SIZE
    assert (parsed.model, parsed.kind, parsed.prompt_param, parsed.text) == ("m", "chat", "messages", None)


def test_content_parts_count_their_text() -> None:
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url", "image_url": {}}]}]
    plain = [{"role": "user", "content": "hello"}]
    assert (
        _parse("chat", {"model": "m", "messages": parts}).block_hashes
        == _parse("chat", {"model": "m", "messages": plain}).block_hashes
    )
    assert _parse("chat", {"model": "m", "messages": parts}).prompt_tokens == tokenizer.count_tokens(
        tokenizer.render_chat(plain)
    )


@pytest.mark.parametrize(
    ("prompt", "n_tokens", "first_ids"),
    [
        (FOX, len(tokenizer.encode(FOX)), tokenizer.encode(FOX)),
        ([FOX], len(tokenizer.encode(FOX)), tokenizer.encode(FOX)),
        (list(range(40)), 40, list(range(40))),
        ([list(range(40))], 40, list(range(40))),
        ([list(range(40)), list(range(7))], 47, list(range(40))),  # a batch: all tokens, first prompt's blocks
        ([FOX, "a b c"], len(tokenizer.encode(FOX)) + 3, tokenizer.encode(FOX)),
    ],
)
def test_completion_prompt_forms(prompt: Any, n_tokens: int, first_ids: list[int]) -> None:
    parsed = _parse("completion", {"model": "m", "prompt": prompt})
    expected = Prompt(len(first_ids), tokenizer.segment_hashes(first_ids), tokenizer.BLOCK_SIZE).block_hashes()
    assert (parsed.prompt_tokens, parsed.block_hashes) == (n_tokens, expected)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"max_tokens": 7}, 7),
        ({"max_completion_tokens": 9}, 9),
        ({"max_tokens": 7, "max_completion_tokens": 9}, 9),  # vLLM: max_completion_tokens wins
        ({}, None),
    ],
)
def test_expected_output_tokens(body: dict[str, Any], expected: int | None) -> None:
    assert _parse("chat", {"model": "m", "messages": MSGS, **body}).expected_output_tokens == expected


def test_client_streams_with_usage_go_upstream_byte_for_byte() -> None:
    raw = b'{"model": "m", "prompt": "hi", "stream": true, "stream_options": {"include_usage": true}, "seed": 3}'
    parsed = parse_request("completion", raw, LIMITS)
    assert (parsed.upstream_body, parsed.client_usage, parsed.stream) == (raw, True, True)


@pytest.mark.parametrize("stream", [False, None])
def test_non_stream_requests_go_upstream_as_streams_with_usage(stream: bool | None) -> None:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi", "name": "bob"}],
        "temperature": 0.25,
        "x_vendor": {"k": [1, 2]},
    }
    if stream is not None:
        body["stream"] = stream
    parsed = _parse("chat", body)
    assert (parsed.stream, parsed.client_usage) == (False, False)
    sent = json.loads(parsed.upstream_body)
    assert sent == {**body, "stream": True, "stream_options": {"include_usage": True}}


def test_a_body_nested_too_deeply_is_a_400() -> None:
    with pytest.raises(OpenAIError) as err:
        parse_request("chat", b"[" * 100_000 + b"]" * 100_000, LIMITS)
    assert err.value.status == HTTPStatus.BAD_REQUEST and "nested too deeply" in err.value.message


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        ("chat", b'{"model": "m", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}'),
        ("chat", b'{"model": "m", "messages": [{"role": "user", "content": "\\udfff"}]}'),
        ("completion", b'{"model": "m", "prompt": "tail \\ud83d"}'),
        ("chat", '{"model": "m", "messages": [{"role": "user", "content": "\\ud800"}]}'.encode("utf-16")),
        ("chat", b'{"model": "m", "messages": [{"role": "user", "content": "\xff"}]}'),
    ],
    ids=["lone high surrogate", "lone low surrogate", "completion prompt", "in a UTF-16 body", "not UTF-8"],
)
def test_text_without_a_utf8_form_is_a_400(kind: Kind, raw: bytes) -> None:
    """Before from_json, json.loads took a lone surrogate escape and the tokenizer failed on it
    (a 500)."""
    with pytest.raises(OpenAIError) as err:
        parse_request(kind, raw, LIMITS)
    assert err.value.status == HTTPStatus.BAD_REQUEST and "not valid JSON: " in err.value.message
    assert "line 1 column" in err.value.message  # where, in the parser's words


def test_a_surrogate_pair_escape_is_one_character_and_a_bom_is_ignored() -> None:
    escaped = b'{"model": "m", "messages": [{"role": "user", "content": "smile \\ud83d\\ude00"}], "stream": true}'
    plain = json.dumps({"model": "m", "messages": [{"role": "user", "content": "smile \U0001f600"}], "stream": True})
    a, b = parse_request("chat", escaped, LIMITS), parse_request("chat", plain.encode(), LIMITS)
    assert (a.prompt_tokens, a.block_hashes) == (b.prompt_tokens, b.block_hashes)
    with_bom = parse_request("chat", b"\xef\xbb\xbf" + escaped, LIMITS)  # RFC 8259: may be ignored
    assert (with_bom.prompt_tokens, with_bom.block_hashes) == (a.prompt_tokens, a.block_hashes)
    assert json.loads(with_bom.upstream_body) == json.loads(a.upstream_body)


def test_stream_options_without_stream_are_refused_as_vllm_does() -> None:
    with pytest.raises(OpenAIError) as err:
        _parse("chat", {"model": "m", "messages": MSGS, "stream_options": {"include_usage": True}})
    assert err.value.param == "stream_options" and "stream=True" in err.value.message


@pytest.mark.parametrize(
    ("stream_options", "client_usage", "upstream_options"),
    [
        (None, False, {"include_usage": True}),
        ({"include_usage": False}, False, {"include_usage": True}),
        ({"include_usage": None}, False, {"include_usage": True}),
        (
            {"include_usage": False, "continuous_usage_stats": True},
            False,
            {"include_usage": True, "continuous_usage_stats": False},
        ),
        ({"include_usage": False, "vendor": 1}, False, {"include_usage": True, "vendor": 1}),
        ({}, True, {}),  # vLLM includes usage when stream_options is given without include_usage
        (
            {"include_usage": True, "continuous_usage_stats": True},
            True,
            {"include_usage": True, "continuous_usage_stats": True},
        ),
    ],
)
def test_streams_ask_the_instance_for_usage(
    stream_options: dict[str, Any] | None, client_usage: bool, upstream_options: dict[str, Any]
) -> None:
    body: dict[str, Any] = {"model": "m", "messages": MSGS, "stream": True, "top_p": 0.5, "extra": {"a": [1]}}
    if stream_options is not None:
        body["stream_options"] = stream_options
    parsed = _parse("chat", body)
    assert parsed.client_usage is client_usage
    sent = json.loads(parsed.upstream_body)
    assert sent == {**body, "stream_options": upstream_options} if not client_usage else sent == body


def test_text_is_kept_only_when_asked() -> None:
    body = json.dumps({"model": "m", "prompt": "secret words"}).encode()
    assert parse_request("completion", body, LIMITS).text is None
    assert parse_request("completion", body, LIMITS, keep_text=True).text == "secret words"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "m", "messages": [{"role": "user", "content": "hi \\u00e9}"}], "stream": true}',
        b'  \r\n{"stream":true,"model":"m","messages":[{"role":"user","content":"hi"}],"seed":3}\n\t ',
    ],
)
def test_a_stream_without_options_keeps_its_bytes_with_usage_appended(raw: bytes) -> None:
    parsed = parse_request("chat", raw, LIMITS)
    assert parsed.upstream_body.startswith(raw.strip()[:-1])
    assert json.loads(parsed.upstream_body) == {**json.loads(raw), "stream_options": {"include_usage": True}}


def test_a_stream_in_utf16_is_re_encoded_not_spliced() -> None:
    body = {"model": "m", "messages": MSGS, "stream": True}
    parsed = parse_request("chat", json.dumps(body).encode("utf-16-le"), LIMITS)
    assert json.loads(parsed.upstream_body.decode("utf-8")) == {**body, "stream_options": {"include_usage": True}}
