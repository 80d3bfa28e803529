"""A whole OpenAI answer assembled from stream chunks, as vLLM would have answered without
``stream``: text joined per choice, tool calls merged, logprobs concatenated, usage kept."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lodestar_gateway.assemble import Assembler, Kind

HEAD = {"id": "chatcmpl-1", "created": 7, "model": "m"}


def _events(*chunks: Any, sep: str = "\n\n") -> bytes:
    return "".join(f"data: {c if isinstance(c, str) else json.dumps(c)}{sep}" for c in chunks).encode()


def _chat(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {**HEAD, "object": "chat.completion.chunk", "choices": choices, **extra}


def _delta(index: int, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


@pytest.mark.parametrize(
    ("case", "chunks", "message", "finish"),
    [
        (
            "content joined",
            [_chat([_delta(0, role="assistant", content="")]), _chat([_delta(0, content="Hi")]),
             _chat([_delta(0, "stop", content=" there")])],
            {"role": "assistant", "content": "Hi there", "tool_calls": []},
            "stop",
        ),
        (
            "tool calls merged by index, content null",
            [
                _chat([_delta(0, role="assistant")]),
                _chat([_delta(0, tool_calls=[{"index": 0, "id": "c1", "type": "function",
                                              "function": {"name": "f", "arguments": '{"a"'}}])]),
                _chat([_delta(0, tool_calls=[{"index": 0, "function": {"arguments": ": 1}"}}])]),
                _chat([_delta(0, tool_calls=[{"index": 1, "id": "c2", "function": {"name": "g"}}])]),
                _chat([_delta(0, "tool_calls")]),
            ],
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
                    {"id": "c2", "type": "function", "function": {"name": "g", "arguments": ""}},
                ],
            },
            "tool_calls",
        ),
        (
            "reasoning text joined beside content",
            [_chat([_delta(0, reasoning_content="think ")]), _chat([_delta(0, reasoning_content="more")]),
             _chat([_delta(0, "length", content="ok")])],
            {"role": "assistant", "content": "ok", "reasoning_content": "think more", "tool_calls": []},
            "length",
        ),
    ],
)  # fmt: skip
def test_chat_messages(case: str, chunks: list[Any], message: dict[str, Any], finish: str) -> None:
    asm = Assembler("chat")
    asm.feed(_events(*chunks, _chat([], usage=USAGE), "[DONE]"))
    body = asm.body()
    assert body["object"] == "chat.completion" and body["usage"] == USAGE, case
    assert (body["id"], body["created"], body["model"]) == ("chatcmpl-1", 7, "m")
    assert body["choices"] == [
        {"index": 0, "message": message, "logprobs": None, "finish_reason": finish, "stop_reason": None}
    ], case
    assert asm.error is None


def test_several_choices_interleaved_come_out_in_index_order() -> None:
    asm = Assembler("chat")
    asm.feed(_events(_chat([_delta(1, content="b1")]), _chat([_delta(0, content="a1")])))
    asm.feed(_events(_chat([_delta(1, "stop", content="b2"), _delta(0, "length", content="a2")])))
    choices = asm.body()["choices"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in choices] == [
        (0, "a1a2", "length"),
        (1, "b1b2", "stop"),
    ]


def test_chat_logprobs_are_concatenated() -> None:
    asm = Assembler("chat")
    lp1 = {"content": [{"token": "a", "logprob": -0.1}]}
    lp2 = {"content": [{"token": "b", "logprob": -0.2}]}
    asm.feed(
        _events(
            _chat([{**_delta(0, content="a"), "logprobs": lp1}]), _chat([{**_delta(0, content="b"), "logprobs": lp2}])
        )
    )
    assert asm.body()["choices"][0]["logprobs"] == {"content": lp1["content"] + lp2["content"]}


def test_completion_text_logprobs_and_stop_reason() -> None:
    def chunk(text: str, token_logprob: float, finish: str | None = None, stop: Any = None) -> dict[str, Any]:
        logprobs = {"tokens": [text], "token_logprobs": [token_logprob], "top_logprobs": [{text: token_logprob}],
                    "text_offset": [0]}  # fmt: skip
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish, "stop_reason": stop}
        return {**HEAD, "id": "cmpl-1", "object": "text_completion", "choices": [choice]}

    asm = Assembler("completion")
    asm.feed(_events(chunk("Once", -1.0), chunk(" upon", -2.0, "stop", 42), {**HEAD, "choices": [], "usage": USAGE}))
    body = asm.body()
    assert body["object"] == "text_completion" and body["id"] == "cmpl-1" and body["usage"] == USAGE
    assert body["choices"] == [
        {
            "index": 0,
            "text": "Once upon",
            "logprobs": {
                "tokens": ["Once", " upon"],
                "token_logprobs": [-1.0, -2.0],
                "top_logprobs": [{"Once": -1.0}, {" upon": -2.0}],
                "text_offset": [0, 0],
            },
            "finish_reason": "stop",
            "stop_reason": 42,
        }
    ]


@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_an_error_event_is_kept(kind: Kind) -> None:
    asm = Assembler(kind)
    error = {"message": "boom", "type": "InternalServerError", "param": None, "code": 500}
    asm.feed(_events(_chat([_delta(0, content="x")]), {"error": error}, "[DONE]"))
    assert asm.error == error


def test_odd_events_are_skipped_and_crlf_separators_work() -> None:
    asm = Assembler("chat")
    odd = [
        "not json", "[1, 2]", '"text"', {"choices": "no"}, {"choices": [1, {"index": "x"}, {"index": 0, "delta": 3}]},
        _chat([_delta(0, tool_calls=["bad", {"index": "x"}, {"index": 0, "function": "no"}])]),
    ]  # fmt: skip
    asm.feed(_events(*odd, _chat([_delta(0, content="ok")]), sep="\r\n\r\n") + b": a comment\n\n")
    body = asm.body()
    assert body["choices"][0]["message"]["content"] == "ok"
    assert body["choices"][0]["message"]["tool_calls"] == [
        {"id": None, "type": "function", "function": {"name": None, "arguments": ""}}
    ]
    assert "usage" not in body and asm.error is None


def test_nothing_fed_gives_an_empty_answer() -> None:
    body = Assembler("completion").body()
    assert body == {"id": "", "object": "text_completion", "created": 0, "model": "", "choices": []}
