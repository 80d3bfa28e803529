"""The project's one deterministic tokenizer: text ↔ token ids ↔ prefix-block hashes.

Every component (emulator, gateway, router, load generator, trace loaders) counts and hashes
tokens with this module, so a prefix shared in text is a prefix hit in the engine.

How it approximates a real BPE tokenizer (Llama-3's tiktoken-style vocabulary):
- Pre-tokenisation as in GPT-style tokenizers: a word with its leading space is one token,
  but long words are split every 6 letters (a real vocabulary splits rare long words too);
  digits group by up to 3 (as Llama-3 does); each other symbol is one token; runs of white
  space are one token. English prose comes out near 4 characters per token, as real
  tokenizers do; code and non-Latin text are rougher (each non-ASCII-letter symbol is a token).
- Token ids are a stable hash of the piece into a 128,256-entry vocabulary (collisions are
  harmless: ids only feed block hashes).
- :func:`synthesize` writes text of exactly ``n`` tokens from a seed (used to turn trace hash
  ids into real prompts); every synthesized word is one token and boundaries never merge.
"""

from __future__ import annotations

import functools
import random
import re
from array import array
from collections.abc import Iterable, Mapping, Sequence

import xxhash

VOCAB_SIZE = 128_256
BLOCK_SIZE = 16
_PIECE = re.compile(r" ?[A-Za-z]{1,6}| ?[0-9]{1,3}| ?[^\sA-Za-z0-9]|\s+")
# The same pieces of ASCII text, as bytes (str's \s also takes \x1c-\x1f, bytes' does not)
_ASCII_PIECE = re.compile(rb" ?[A-Za-z]{1,6}| ?[0-9]{1,3}| ?[^\s\x1c-\x1fA-Za-z0-9]|[\s\x1c-\x1f]+")
_ROOT_CHAIN = 0x6C6F646573746172  # "lodestar"


def pieces(text: str) -> list[str]:
    """Split ``text`` into token strings (concatenating them gives ``text`` back)."""
    return _PIECE.findall(text)


def encode(text: str) -> list[int]:
    """Token ids of ``text``."""
    # map() over the C functions: ~45 % faster than a comprehension calling them (the
    # gateway tokenizes every prompt on the way to the first token); ASCII text (most prompts)
    # is split as bytes, so no piece is encoded on its own (~30 % less time, the same ids)
    if text.isascii():
        return [h % VOCAB_SIZE for h in map(xxhash.xxh32_intdigest, _ASCII_PIECE.findall(text.encode()))]
    found = _PIECE.findall(text)
    try:
        return [h % VOCAB_SIZE for h in map(xxhash.xxh32_intdigest, map(str.encode, found))]
    except UnicodeEncodeError:  # a lone surrogate (a JSON "\ud800" escape): no UTF-8, still a token
        return [xxhash.xxh32_intdigest(p.encode("utf-8", "surrogatepass")) % VOCAB_SIZE for p in found]


def count_tokens(text: str) -> int:
    return len(_PIECE.findall(text))


def content_hash(token_ids: Sequence[int]) -> int:
    """Hash of one block's token ids (not chained)."""
    return xxhash.xxh3_64_intdigest(array("I", token_ids).tobytes())


def chain(parent: int, value: int) -> int:
    """Chained block hash: depends on everything before (``parent``) and this block (``value``)."""
    return xxhash.xxh3_64_intdigest(((parent << 64) | (value & 0xFFFFFFFFFFFFFFFF)).to_bytes(16, "little"))


def segment_hashes(token_ids: Sequence[int], block_size: int = BLOCK_SIZE) -> tuple[int, ...]:
    """Content hashes of each full ``block_size`` block of ``token_ids`` (the partial tail is dropped)."""
    full = len(token_ids) // block_size
    data, width = array("I", token_ids[: full * block_size]).tobytes(), block_size * 4
    # each block's bytes are those content_hash() hashes
    return tuple(xxhash.xxh3_64_intdigest(data[i * width : (i + 1) * width]) for i in range(full))


def expand_block_hashes(
    segments: Sequence[int], segment_tokens: int, n_tokens: int, block_size: int = BLOCK_SIZE, root: int = _ROOT_CHAIN
) -> list[int]:
    """Chained hashes of the full ``block_size`` blocks of a prompt described by segments.

    A prompt is a sequence of segments, each covering ``segment_tokens`` tokens and identified
    by a content id (a trace's 512-token block hash id, or a 16-token block content hash). Block
    ``j`` hashes the chain of segments up to its own and its position inside that segment, so
    two prompts share block ``j`` exactly when they share every token up to its end.
    """
    if segment_tokens % block_size:
        raise ValueError(f"segment_tokens {segment_tokens} is not a multiple of block_size {block_size}")
    per_segment = segment_tokens // block_size
    n_blocks = min(n_tokens // block_size, len(segments) * per_segment)
    out: list[int] = []
    parent = root
    for seg_index in range((n_blocks + per_segment - 1) // per_segment):
        parent = chain(parent, segments[seg_index])
        first = seg_index * per_segment
        for sub in range(min(per_segment, n_blocks - first)):
            out.append(parent if per_segment == 1 else chain(parent, sub))
    return out


# --- synthetic text ------------------------------------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _word(rng: random.Random) -> str:
    return " " + "".join(rng.choice(_LETTERS) for _ in range(rng.randint(2, 6)))


@functools.lru_cache(maxsize=4096)
def synthesize(n_tokens: int, seed: int) -> str:
    """Deterministic text of exactly ``n_tokens`` tokens (each a space + 2-6 letters)."""
    rng = random.Random(seed)
    return "".join(_word(rng) for _ in range(n_tokens))


def synthesize_segments(segments: Iterable[int], segment_tokens: int, n_tokens: int) -> str:
    """Text for a prompt made of trace segments: segment ``h`` always yields the same words.

    The last segment is cut so that the whole text has exactly ``n_tokens`` tokens.
    """
    parts: list[str] = []
    remaining = n_tokens
    for seg in segments:
        if remaining <= 0:
            break
        take = min(segment_tokens, remaining)
        text = synthesize(segment_tokens, seed=seg)
        if take < segment_tokens:
            text = "".join(pieces(text)[:take])
        parts.append(text)
        remaining -= take
    if remaining > 0:
        parts.append(synthesize(remaining, seed=chain(_ROOT_CHAIN, n_tokens) & 0xFFFFFFFF))
    return "".join(parts)


# --- chat template -----------------------------------------------------------------------


def render_chat(messages: Sequence[Mapping[str, object]]) -> str:
    """The project's chat template: how chat messages become one prompt text.

    ``<|role|>`` markers around each message and a trailing assistant marker, like Llama-3's
    template. Content may be a string or a list of OpenAI content parts (text parts are used).
    """
    out: list[str] = []
    for message in messages:
        role = str(message.get("role", "user"))
        out.append(f"<|{role}|>\n{_content_text(message.get('content'))}\n")
    out.append("<|assistant|>\n")
    return "".join(out)


def _content_text(content: object) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [str(p.get("text", "")) for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
        return "".join(texts)
    return str(content)
