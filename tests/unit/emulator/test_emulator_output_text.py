"""Output text: deterministic per seed, one token per entry, generated lazily by pages."""

from __future__ import annotations

import pytest

from lodestar import tokenizer
from lodestar.emulator.output_text import PAGE_TOKENS, OutputText


@pytest.mark.parametrize("n", [0, 1, PAGE_TOKENS - 1, PAGE_TOKENS, 3 * PAGE_TOKENS + 5])
def test_text_is_exactly_n_tokens_one_per_entry(n: int) -> None:
    out = OutputText(seed=7, n_tokens=n)
    assert len(out) == n
    assert all(tokenizer.count_tokens(out[i]) == 1 for i in range(n))
    assert tokenizer.count_tokens(out.text()) == n


def test_same_seed_same_words_in_any_read_order() -> None:
    n = 2 * PAGE_TOKENS + 3
    forward = [OutputText(11, n)[i] for i in range(n)]
    backward = OutputText(11, n)
    assert [backward[i] for i in reversed(range(n))] == list(reversed(forward))
    assert OutputText(12, n).text() != OutputText(11, n).text()
    assert OutputText(11, n + 50).text().startswith("".join(forward))  # a prefix does not depend on length


def test_out_of_range_is_an_index_error() -> None:
    with pytest.raises(IndexError):
        OutputText(1, 3)[3]
    with pytest.raises(ValueError, match=">= 0"):
        OutputText(1, -1)
