"""The OpenAI request fields the gateway reads, validated; every other field is allowed and
passed through untouched (the instance validates what it serves).

Models validate the client's JSON as parsed by pydantic-core's ``from_json`` (strict UTF-8);
the body sent upstream is the client's own bytes (or, for streams without usage, that JSON with
usage switched on).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

ModelName = Annotated[StrictStr, Field(min_length=1, max_length=256)]
TokenCount = Annotated[StrictInt, Field(ge=1)]
TokenId = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]  # hashed as unsigned 32-bit integers


class OpenAIRequest(BaseModel):
    model_config = ConfigDict(extra="allow")


class StreamOptions(OpenAIRequest):
    # vLLM's default: usage is included when stream_options is given without include_usage.
    include_usage: StrictBool | None = True
    continuous_usage_stats: StrictBool | None = False


class ChatMessage(OpenAIRequest):
    role: StrictStr
    content: StrictStr | list[dict[str, Any]] | None = None


class _Common(OpenAIRequest):
    model: ModelName
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: TokenCount | None = None


class ChatCompletionRequest(_Common):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: TokenCount | None = None

    @property
    def requested_max_tokens(self) -> int | None:
        """vLLM's rule: ``max_completion_tokens`` wins over the deprecated ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def max_tokens_param(self) -> str:
        return "max_completion_tokens" if self.max_completion_tokens else "max_tokens"


class CompletionRequest(_Common):
    prompt: StrictStr | list[StrictStr] | list[TokenId] | list[list[TokenId]]

    @property
    def requested_max_tokens(self) -> int | None:
        return self.max_tokens

    @property
    def max_tokens_param(self) -> str:
        return "max_tokens"
