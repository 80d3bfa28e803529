"""Write a Hugging Face tokenizer that counts tokens exactly as ``lodestar.tokenizer`` does, for
the text guidellm's synthetic data generator writes (Faker's English lorem words, digits,
punctuation). Run with the guidellm virtualenv's Python (it needs ``tokenizers``,
``transformers`` and ``faker``), not the project's:

    .lodestar/guidellm-venv/bin/python benchmarks/guidellm_tokenizer.py OUT_DIR PIECE_REGEX

guidellm makes a prompt of N tokens by encoding Faker text and decoding the first N ids; with
this tokenizer those N ids are N pieces of the project tokenizer's regex, so the emulator
counts exactly N prompt tokens (no Hugging Face hub download is needed, or possible, here).
The pre-tokenizer is the project's regex, the model a word-level vocabulary of every piece
Faker's lorem provider can produce, the decoder plain concatenation.
"""

from __future__ import annotations

import re
import string
import sys
from pathlib import Path

from faker import Faker
from faker.providers.lorem.en_US import Provider as LoremProvider
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

UNK = "[UNK]"


def vocabulary(pattern: re.Pattern[str]) -> list[str]:
    pieces: set[str] = set()
    words = set(LoremProvider.word_list)
    for word in words | {w.capitalize() for w in words}:
        for text in (word, " " + word):
            pieces.update(pattern.findall(text))
    for ch in string.ascii_letters + string.punctuation:
        pieces.update((ch, " " + ch))
    for n in range(1000):
        for text in (str(n), f"{n:02d}", f"{n:03d}"):
            pieces.update((text, " " + text))
    pieces.update((" ", "  ", "\n", "\n\n", " \n", "\t"))
    faker = Faker()
    for seed in range(200):  # whatever else Faker writes (guidellm's own calls, many seeds)
        faker.seed_instance(seed)
        pieces.update(pattern.findall(f"{seed} {seed} m0 " + faker.text(max_nb_chars=4000)))
    return sorted(pieces)


def main(out_dir: Path, regex: str) -> None:
    pattern = re.compile(regex)
    vocab = {UNK: 0}
    for piece in vocabulary(pattern):
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(regex), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=UNK, clean_up_tokenization_spaces=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out_dir))
    # Self-check: N ids decode to text of exactly N pieces, with no unknown piece.
    faker = Faker()
    for seed in range(20):
        faker.seed_instance(1000 + seed)
        text = f"{seed} 7 m0 " + faker.text(max_nb_chars=3000)
        ids = fast.encode(text)
        assert vocab[UNK] not in ids, [p for p in pattern.findall(text) if p not in vocab][:5]
        for n in (1, 17, 128, 256, 500):
            decoded = fast.decode(ids[:n], skip_special_tokens=True)
            assert len(pattern.findall(decoded)) == n, (n, decoded[:80])
    print(f"wrote {out_dir} ({len(vocab)} pieces)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
