"""Response bodies for one request: SSE chunks (one per token) and whole responses.

Stream chunks follow vLLM: chat streams open with ``delta: {"role": "assistant", "content": ""}``
sent with the first token; each token is one ``data: {...}`` event; the last token's chunk
carries ``finish_reason: "length"``; ``stream_options.include_usage`` adds a chunk with empty
``choices`` and ``usage``; ``continuous_usage_stats`` puts usage in every chunk; then
``data: [DONE]``.

The pydantic chunk models are the contract. The hot path does not serialise a model per token:
each renderer serialises its chunk model once with a marker as the token text and splits the
JSON there, so a token chunk is ``prefix + json(text) + suffix`` (the unit tests check that this
equals the model's own serialisation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from lodestar.emulator.protocol import (
    ChatChoice,
    ChatCompletionChunk,
    ChatCompletionResponse,
    ChatStreamChoice,
    CompletionChoice,
    CompletionChunk,
    CompletionResponse,
    CompletionStreamChoice,
    DeltaMessage,
    PromptTokensDetails,
    ResponseMessage,
    UsageInfo,
)

DONE = b"data: [DONE]\n\n"
FINISH_REASON = "length"  # no EOS: every request generates exactly its max_tokens
_MARK = "@@lodestar-token@@"


class TokenTexts(Protocol):
    """Token ``i``'s text by index (a list, or a lazy :class:`OutputText`)."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int, /) -> str: ...


def sse(payload: str) -> bytes:
    return f"data: {payload}\n\n".encode()


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int | None = None) -> UsageInfo:
    details = None if cached_tokens is None else PromptTokensDetails(cached_tokens=cached_tokens)
    return UsageInfo(
        prompt_tokens=prompt_tokens,
        total_tokens=prompt_tokens + completion_tokens,
        completion_tokens=completion_tokens,
        prompt_tokens_details=details,
    )


def _dump(model: BaseModel) -> str:
    return model.model_dump_json(exclude_unset=True)


@dataclass(frozen=True, slots=True)
class _Template:
    prefix: str
    suffix: str

    @classmethod
    def of(cls, model: BaseModel) -> _Template:
        text = _dump(model)
        prefix, sep, suffix = text.partition(json.dumps(_MARK))
        if not sep:
            raise ValueError("chunk model does not contain the token marker")
        return cls("data: " + prefix, suffix + "\n\n")

    def render(self, token: str) -> str:
        return self.prefix + json.dumps(token) + self.suffix


class StreamRenderer:
    """SSE bytes of one request's stream. ``texts[i]`` is the text of token ``i``."""

    def __init__(
        self,
        request_id: str,
        model: str,
        created: int,
        texts: TokenTexts,
        prompt_tokens: int,
        include_usage: bool,
        continuous_usage: bool,
    ) -> None:
        self.request_id = request_id
        self.model = model
        self.created = created
        self.texts = texts
        self.prompt_tokens = prompt_tokens
        self.include_usage = include_usage
        self.continuous_usage = continuous_usage and include_usage
        self._mid = _Template.of(self._chunk(_MARK, last=False, usage=None))
        self._last = _Template.of(self._chunk(_MARK, last=True, usage=None))

    # --- what subclasses define --------------------------------------------------------------

    def _chunk(self, text: str, last: bool, usage: UsageInfo | None) -> BaseModel:
        raise NotImplementedError

    def _opening(self, usage: UsageInfo | None) -> BaseModel | None:
        """A chunk sent before the first token (chat: the assistant role), or None."""
        return None

    def _usage_chunk(self, usage: UsageInfo) -> BaseModel:
        raise NotImplementedError

    # --- rendering ---------------------------------------------------------------------------

    @property
    def max_tokens(self) -> int:
        return len(self.texts)

    def tokens(self, start: int, stop: int) -> bytes:
        """Chunks of tokens ``start`` .. ``stop - 1`` (the opening chunk first if ``start`` is 0)."""
        parts: list[str] = []
        last = self.max_tokens - 1
        if start == 0:
            opening = self._opening(usage(self.prompt_tokens, 0) if self.continuous_usage else None)
            if opening is not None:
                parts.append("data: " + _dump(opening) + "\n\n")
        if self.continuous_usage:
            for i in range(start, stop):
                chunk = self._chunk(self.texts[i], i == last, usage(self.prompt_tokens, i + 1))
                parts.append("data: " + _dump(chunk) + "\n\n")
        else:
            mid, texts = self._mid, self.texts
            parts.extend(mid.render(texts[i]) for i in range(start, min(stop, last)))
            if stop > last:
                parts.append(self._last.render(texts[last]))
        return "".join(parts).encode()

    def tail(self, cached_tokens: int | None = None) -> bytes:
        """After the last token: the usage chunk (if asked for), then ``[DONE]``."""
        if not self.include_usage:
            return DONE
        final = usage(self.prompt_tokens, self.max_tokens, cached_tokens)
        return sse(_dump(self._usage_chunk(final))) + DONE


class ChatStreamRenderer(StreamRenderer):
    def _chunk(self, text: str, last: bool, usage: UsageInfo | None) -> BaseModel:
        choice = ChatStreamChoice(index=0, delta=DeltaMessage(content=text), logprobs=None, finish_reason=None)
        if last:
            choice = ChatStreamChoice(
                index=0, delta=DeltaMessage(content=text), logprobs=None, finish_reason=FINISH_REASON, stop_reason=None
            )
        chunk = ChatCompletionChunk(
            id=self.request_id, object="chat.completion.chunk", created=self.created, model=self.model, choices=[choice]
        )
        if usage is not None:
            chunk.usage = usage
        return chunk

    def _opening(self, usage: UsageInfo | None) -> BaseModel:
        choice = ChatStreamChoice(
            index=0, delta=DeltaMessage(role="assistant", content=""), logprobs=None, finish_reason=None
        )
        chunk = ChatCompletionChunk(
            id=self.request_id, object="chat.completion.chunk", created=self.created, model=self.model, choices=[choice]
        )
        if usage is not None:
            chunk.usage = usage
        return chunk

    def _usage_chunk(self, usage: UsageInfo) -> BaseModel:
        return ChatCompletionChunk(
            id=self.request_id,
            object="chat.completion.chunk",
            created=self.created,
            model=self.model,
            choices=[],
            usage=usage,
        )


class CompletionStreamRenderer(StreamRenderer):
    def _chunk(self, text: str, last: bool, usage: UsageInfo | None) -> BaseModel:
        choice = CompletionStreamChoice(
            index=0, text=text, logprobs=None, finish_reason=FINISH_REASON if last else None, stop_reason=None
        )
        chunk = CompletionChunk(
            id=self.request_id, object="text_completion", created=self.created, model=self.model, choices=[choice]
        )
        if usage is not None:
            chunk.usage = usage
        return chunk

    def _usage_chunk(self, usage: UsageInfo) -> BaseModel:
        return CompletionChunk(
            id=self.request_id,
            object="text_completion",
            created=self.created,
            model=self.model,
            choices=[],
            usage=usage,
        )


def chat_response(request_id: str, model: str, created: int, text: str, usage: UsageInfo) -> ChatCompletionResponse:
    choice = ChatChoice(index=0, message=ResponseMessage(content=text), finish_reason=FINISH_REASON)
    return ChatCompletionResponse(id=request_id, created=created, model=model, choices=[choice], usage=usage)


def completion_response(request_id: str, model: str, created: int, text: str, usage: UsageInfo) -> CompletionResponse:
    choice = CompletionChoice(index=0, text=text, finish_reason=FINISH_REASON)
    return CompletionResponse(id=request_id, created=created, model=model, choices=[choice], usage=usage)
