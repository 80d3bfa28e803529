"""The words a response is made of: deterministic, one token each, generated as needed.

Token ``i`` of a response seeded ``seed`` is word ``i % 64`` of page ``P(seed, i // 64)``, one
of ``PAGES`` fixed pages of 64 words from ``tokenizer.synthesize``. Pages are made once per
process and shared, so a token costs an index, not a random word (text generation was the
largest per-token cost), and a large ``max_tokens`` costs nothing up front. The same request
id always reads the same text; different ids read different page sequences.
"""

from __future__ import annotations

import functools

from lodestar import tokenizer

PAGE_TOKENS = 64
PAGES = 1024


@functools.cache
def _page(number: int) -> tuple[str, ...]:
    """Page ``number`` (< PAGES): 64 one-token words. Bounded (PAGES entries), never mutated."""
    return tuple(tokenizer.pieces(tokenizer.synthesize(PAGE_TOKENS, seed=0x9E3779B9 ^ number)))


class OutputText:
    """``n_tokens`` token strings; ``text[i]`` is token ``i``; ``"".join`` of all re-tokenises
    to exactly ``n_tokens`` tokens."""

    def __init__(self, seed: int, n_tokens: int) -> None:
        if n_tokens < 0:
            raise ValueError(f"n_tokens must be >= 0, got {n_tokens}")
        self.seed = seed
        self.n_tokens = n_tokens

    def __len__(self) -> int:
        return self.n_tokens

    def __getitem__(self, i: int) -> str:
        if not 0 <= i < self.n_tokens:
            raise IndexError(i)
        page = tokenizer.chain(self.seed, i // PAGE_TOKENS) % PAGES
        return _page(page)[i % PAGE_TOKENS]

    def text(self) -> str:
        return "".join(self[i] for i in range(self.n_tokens))
