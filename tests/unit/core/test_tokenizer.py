"""The shared tokenizer: counts, determinism, block hashes that follow shared prefixes."""

from __future__ import annotations

import random

import pytest
import xxhash

from lodestar import tokenizer
from lodestar.workload.request import Prompt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello world", [" world", "Hello"]),
        ("internationalisation", ["intern", "ationa", "lisati", "on"]),
        ("x = 12345;", [" =", " 123", "45", ";", "x"]),
        ("a\n\nb", ["\n\n", "a", "b"]),
    ],
)
def test_pieces_split_like_a_pretokenizer(text: str, expected: list[str]) -> None:
    got = tokenizer.pieces(text)
    assert "".join(got) == text
    assert sorted(got) == sorted(expected)


def test_english_prose_is_near_four_characters_per_token() -> None:
    prose = (
        "The quick brown fox jumps over the lazy dog while the router learns which instance "
        "serves each request fastest, and keeps learning as load and hardware change over time."
    )
    ratio = len(prose) / tokenizer.count_tokens(prose)
    assert 3.5 <= ratio <= 5.5


@pytest.mark.parametrize("n", [1, 15, 16, 17, 512, 1000])
def test_synthesize_gives_exact_token_counts_deterministically(n: int) -> None:
    text = tokenizer.synthesize(n, seed=7)
    assert tokenizer.count_tokens(text) == n
    assert text == tokenizer.synthesize(n, seed=7)
    assert text != tokenizer.synthesize(n, seed=8)


def test_shared_text_prefix_gives_shared_block_hashes() -> None:
    base = tokenizer.synthesize(100, seed=1)
    a = Prompt.from_text(base + tokenizer.synthesize(40, seed=2))
    b = Prompt.from_text(base + tokenizer.synthesize(40, seed=3))
    ha, hb = a.block_hashes(), b.block_hashes()
    assert len(ha) == len(hb) == 140 // 16
    shared = sum(1 for x, y in zip(ha, hb, strict=True) if x == y)
    assert shared == 100 // 16  # every full block inside the common 100 tokens, none after
    assert ha[shared:] != hb[shared:]


def test_trace_segments_and_their_text_have_the_same_sharing_structure() -> None:
    # Two Mooncake-style prompts sharing their first two 512-token blocks.
    p1 = Prompt(n_tokens=1300, segments=(10, 11, 12), segment_tokens=512)
    p2 = Prompt(n_tokens=1100, segments=(10, 11, 99), segment_tokens=512)
    h1, h2 = p1.block_hashes(), p2.block_hashes()
    assert len(h1) == 1300 // 16 and len(h2) == 1100 // 16
    common = next(i for i, (x, y) in enumerate(zip(h1, h2, strict=False)) if x != y)
    assert common == 1024 // 16
    t1, t2 = Prompt.from_text(p1.text()), Prompt.from_text(p2.text())
    assert (t1.n_tokens, t2.n_tokens) == (1300, 1100)
    g1, g2 = t1.block_hashes(), t2.block_hashes()
    assert next(i for i, (x, y) in enumerate(zip(g1, g2, strict=False)) if x != y) == common


def test_a_lone_surrogate_is_a_token_like_any_other_symbol() -> None:
    """Text decoded from JSON can hold one (``"\\ud800"``); it has no UTF-8 form, which made
    encode() raise. Now it is one token with a stable id, and the rest of the text is unchanged."""
    ids = tokenizer.encode("caf\u00e9 \ud800 ok")
    assert ids == tokenizer.encode("caf\u00e9 \ud800 ok") and len(ids) == tokenizer.count_tokens("caf\u00e9 \ud800 ok")
    assert ids[:2] == tokenizer.encode("caf\u00e9 ")[:2] and ids[-1] == tokenizer.encode(" ok")[-1]
    assert tokenizer.encode("\ud800") != tokenizer.encode("\udc00")


def test_chat_template_is_stable_and_handles_content_parts() -> None:
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert tokenizer.render_chat(msgs) == "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\n"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_tokens": 0}, "n_tokens"),
        ({"n_tokens": 5, "segment_tokens": 10}, "segment_tokens"),
    ],
)
def test_prompt_rejects_bad_shapes(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Prompt(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["Hello, world! 12345 héllo € 漢字\n\n  end", tokenizer.synthesize(200, seed=7), ""])
def test_token_ids_and_block_hashes_are_their_definitions(text: str) -> None:
    """The fast paths (map over the C hash functions, one buffer for all blocks) give exactly
    the defined values: xxh32 of each piece's UTF-8 mod the vocabulary; content_hash per block."""
    ids = tokenizer.encode(text)
    assert ids == [xxhash.xxh32_intdigest(p.encode("utf-8")) % tokenizer.VOCAB_SIZE for p in tokenizer.pieces(text)]
    for size in (16, 5):
        full = len(ids) // size
        expected = tuple(tokenizer.content_hash(ids[i * size : (i + 1) * size]) for i in range(full))
        assert tokenizer.segment_hashes(ids, size) == expected
    assert tokenizer.encode("Hello") == [xxhash.xxh32_intdigest(b"Hello") % 128_256]


@pytest.mark.parametrize(("segment_tokens", "n_tokens"), [(16, 170), (16, 15), (16, 400), (64, 170), (512, 1100)])
def test_block_hashes_chain_their_segments_by_definition(segment_tokens: int, n_tokens: int) -> None:
    """Block j's hash chains every segment up to its own (and its position inside a segment
    longer than a block), whichever path computes it."""
    segments = [(k * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF for k in range(1, 20)]
    per_segment = segment_tokens // tokenizer.BLOCK_SIZE
    n_blocks = min(n_tokens // tokenizer.BLOCK_SIZE, len(segments) * per_segment)
    expected, parent = [], tokenizer._ROOT_CHAIN
    for j in range(n_blocks):
        if j % per_segment == 0:
            parent = tokenizer.chain(parent, segments[j // per_segment])
        expected.append(parent if per_segment == 1 else tokenizer.chain(parent, j % per_segment))
    assert tokenizer.expand_block_hashes(segments, segment_tokens, n_tokens) == expected


def _by_pieces(text: str) -> list[int]:
    """The definition of the ids: each piece's UTF-8 bytes hashed, into the vocabulary."""
    return [xxhash.xxh32_intdigest(p.encode()) % tokenizer.VOCAB_SIZE for p in tokenizer.pieces(text)]


def test_ascii_text_gets_the_ids_of_its_pieces_whatever_characters_it_holds() -> None:
    # every ASCII character (controls and \x1c-\x1f, which str's \s counts as space and bytes'
    # does not, included), in runs and mixed, through the bytes path encode() takes for ASCII
    rng = random.Random(3)
    alphabet = [chr(c) for c in range(128)]
    texts = ["".join(alphabet), *("".join(rng.choices(alphabet, k=rng.randint(1, 300))) for _ in range(300))]
    texts += ["word\x1c\x1d  next", "  \t\x1f12345abc!?", "x\x0b\x0cy"]
    for text in texts:
        assert text.isascii()
        assert tokenizer.encode(text) == _by_pieces(text), repr(text)


def test_non_ascii_text_gets_the_ids_of_its_pieces() -> None:
    for text in ["naïve café – 10 €", "日本語のテキスト", "mixed ascii and ü\u2028line"]:
        assert tokenizer.encode(text) == _by_pieces(text)
