"""From a parsed OpenAI request to what the engine needs: the prompt's tokens and block hashes,
and the number of tokens to generate. Pure functions; errors are :class:`OpenAIError` (400).

- Chat: ``render_chat(messages)`` (the project's chat template), then the project tokenizer.
- Completions: the prompt string, or one list of token ids (block hashes from those ids).
- Output length: exactly the requested ``max_tokens`` (the emulator has no EOS); when absent,
  ``default_max_tokens`` capped by what is left of the context (vLLM fills the context until EOS).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from lodestar import tokenizer
from lodestar.emulator.protocol import ChatCompletionRequest, CompletionRequest
from lodestar.openai_errors import bad_request, context_too_long
from lodestar.workload.request import Prompt


def chat_prompt(request: ChatCompletionRequest) -> Prompt:
    messages = [m.model_dump() for m in request.messages]
    return Prompt.from_text(tokenizer.render_chat(messages))


def completion_prompt(request: CompletionRequest, vocab_size: int) -> Prompt:
    prompt = request.prompt
    if isinstance(prompt, str):
        return _text_prompt(prompt)
    if not prompt:
        raise bad_request("The prompt cannot be empty.", "prompt")
    first = prompt[0]
    if isinstance(first, int):
        return _token_prompt(cast(list[int], prompt), vocab_size)
    if len(prompt) != 1:
        raise bad_request(f"prompt has {len(prompt)} entries: the emulator serves one prompt per request", "prompt")
    return _text_prompt(first) if isinstance(first, str) else _token_prompt(first, vocab_size)


def _text_prompt(text: str) -> Prompt:
    if not tokenizer.count_tokens(text):
        raise bad_request("The prompt cannot be empty.", "prompt")
    return Prompt.from_text(text)


def _token_prompt(ids: Sequence[int], vocab_size: int) -> Prompt:
    if not ids:
        raise bad_request("The prompt cannot be empty.", "prompt")
    bad = next((i for i in ids if not 0 <= i < vocab_size), None)
    if bad is not None:
        raise bad_request(f"Token id {bad} is out of vocabulary (size {vocab_size}).", "prompt")
    return Prompt(n_tokens=len(ids), segments=tokenizer.segment_hashes(ids), segment_tokens=tokenizer.BLOCK_SIZE)


def resolve_max_tokens(
    requested: int | None, prompt_tokens: int, max_model_len: int, default_max_tokens: int, prompt_param: str
) -> int:
    """Tokens to generate. A requested count that does not fit is left for the engine to
    reject (:class:`RequestRejectedError`, answered with :func:`context_too_long`)."""
    if requested is not None:
        return requested
    room = max_model_len - prompt_tokens
    if room < 1:
        raise context_too_long(max_model_len, prompt_tokens, None, prompt_param)
    return min(default_max_tokens, room)


def block_hashes(prompt: Prompt, block_size: int) -> list[int]:
    """The engine's chained block hashes; none (no prefix caching) if ``block_size`` does not
    divide the tokenizer's 16-token segments."""
    if tokenizer.BLOCK_SIZE % block_size:
        return []
    return prompt.block_hashes(block_size)
