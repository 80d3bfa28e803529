"""SSE formatting: one chunk per token, vLLM's chunk shapes, the fast path equals the models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from lodestar import tokenizer
from lodestar.emulator.protocol import (
    ChatCompletionChunk,
    ChatStreamChoice,
    CompletionChunk,
    CompletionStreamChoice,
    DeltaMessage,
    UsageInfo,
)
from lodestar.emulator.render import (
    DONE,
    ChatStreamRenderer,
    CompletionStreamRenderer,
    StreamRenderer,
    chat_response,
    usage,
)

TEXTS = tokenizer.pieces(tokenizer.synthesize(5, seed=42))


def _events(raw: bytes) -> list[str]:
    text = raw.decode()
    assert text.endswith("\n\n")
    events = text.split("\n\n")[:-1]
    assert all(e.startswith("data: ") for e in events)
    return [e.removeprefix("data: ") for e in events]


def _renderer(chat: bool, include_usage: bool = False, continuous: bool = False) -> StreamRenderer:
    cls = ChatStreamRenderer if chat else CompletionStreamRenderer
    return cls("id-1", "llama-3-8b", 1700000000, TEXTS, 12, include_usage, continuous)


def _expected_chat(i: int, last: bool) -> dict[str, Any]:
    choice = ChatStreamChoice(index=0, delta=DeltaMessage(content=TEXTS[i]), logprobs=None, finish_reason=None)
    if last:
        choice = ChatStreamChoice(
            index=0, delta=DeltaMessage(content=TEXTS[i]), logprobs=None, finish_reason="length", stop_reason=None
        )
    chunk = ChatCompletionChunk(
        id="id-1", object="chat.completion.chunk", created=1700000000, model="llama-3-8b", choices=[choice]
    )
    return chunk.model_dump(exclude_unset=True)


def _expected_completion(i: int, last: bool) -> dict[str, Any]:
    choice = CompletionStreamChoice(
        index=0, text=TEXTS[i], logprobs=None, finish_reason="length" if last else None, stop_reason=None
    )
    chunk = CompletionChunk(
        id="id-1", object="text_completion", created=1700000000, model="llama-3-8b", choices=[choice]
    )
    return chunk.model_dump(exclude_unset=True)


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completion"])
def test_one_chunk_per_token_matching_the_chunk_models(chat: bool) -> None:
    r = _renderer(chat)
    events = [json.loads(e) for e in _events(r.tokens(0, 5))]
    if chat:
        opening = events.pop(0)
        assert opening["choices"] == [
            {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
        ]
    expected = _expected_chat if chat else _expected_completion
    assert events == [expected(i, i == 4) for i in range(5)]
    assert r.tail() == DONE


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completion"])
def test_split_rendering_equals_whole(chat: bool) -> None:
    r = _renderer(chat)
    assert r.tokens(0, 2) + r.tokens(2, 3) + r.tokens(3, 5) == r.tokens(0, 5)


def test_text_of_the_chunks_is_exactly_max_tokens_tokens() -> None:
    events = [json.loads(e) for e in _events(_renderer(True).tokens(0, 5))]
    text = "".join(e["choices"][0]["delta"]["content"] for e in events)
    assert tokenizer.count_tokens(text) == 5
    assert text == "".join(TEXTS)


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "completion"])
def test_include_usage_adds_a_final_usage_chunk_then_done(chat: bool) -> None:
    r = _renderer(chat, include_usage=True)
    body = r.tokens(0, 5) + r.tail(cached_tokens=None)
    events = _events(body)
    assert events[-1] == "[DONE]"
    final = json.loads(events[-2])
    assert final["choices"] == []
    assert final["usage"] == {
        "prompt_tokens": 12,
        "total_tokens": 17,
        "completion_tokens": 5,
        "prompt_tokens_details": None,
    }
    assert all("usage" not in json.loads(e) for e in events[:-2])


def test_continuous_usage_puts_usage_in_every_chunk() -> None:
    r = _renderer(True, include_usage=True, continuous=True)
    events = [json.loads(e) for e in _events(r.tokens(0, 5))]
    assert [e["usage"]["completion_tokens"] for e in events] == [0, 1, 2, 3, 4, 5]
    assert events[-1]["choices"][0]["finish_reason"] == "length"


def test_cached_tokens_go_in_prompt_tokens_details() -> None:
    final = json.loads(_events(_renderer(False, include_usage=True).tail(cached_tokens=16))[0])
    assert final["usage"]["prompt_tokens_details"] == {"cached_tokens": 16}


def test_whole_chat_response_shape() -> None:
    body = json.loads(chat_response("id-1", "m", 1, "".join(TEXTS), usage(12, 5)).model_dump_json())
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "".join(TEXTS), "tool_calls": []}
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["total_tokens"] == 17


def test_a_chunk_model_without_the_token_is_a_programming_error() -> None:
    class Broken(CompletionStreamRenderer):
        def _chunk(self, text: str, last: bool, usage: UsageInfo | None) -> BaseModel:
            return super()._chunk("constant", last, usage)

    with pytest.raises(ValueError, match="token marker"):
        Broken("id", "m", 1, TEXTS, 1, False, False)
