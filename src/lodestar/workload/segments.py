"""Fresh prompt-segment ids, and re-keying segments so two streams cannot share by accident.

Trace segment ids are small integers (Mooncake's remapped hash ids start at 0). Ids made here
live in [2**62, 2**63), so they never meet a trace's ids; two allocators with different bases
meet only if their bases land within 2**40 of each other (probability about 2**-21 per pair).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import xxhash

from lodestar.workload.request import Prompt, RequestSpec

_LOW = 1 << 62
_SPAN = (1 << 62) - (1 << 40)


def unique_segment_base(label: str) -> int:
    """A deterministic allocator base for ``label`` (e.g. ``"azure:<file name>"``)."""
    return _LOW + xxhash.xxh3_64_intdigest(label.encode("utf-8")) % _SPAN


def random_segment_base(rng: np.random.Generator) -> int:
    """An allocator base drawn from ``rng`` (generators: same seed, same ids)."""
    return _LOW + int(rng.integers(0, _SPAN))


@dataclass
class SegmentIds:
    """Hands out consecutive, never-repeated segment ids from ``base`` (not thread-safe)."""

    base: int
    _next: int = 0

    def take(self, n: int) -> tuple[int, ...]:
        """``n`` fresh ids."""
        start = self.base + self._next
        self._next += n
        return tuple(range(start, start + n))

    def cover(self, n_tokens: int, segment_tokens: int) -> tuple[int, ...]:
        """Fresh ids for every (full or partial) ``segment_tokens`` segment of ``n_tokens``."""
        return self.take(-(-n_tokens // segment_tokens))


def rekey(requests: Sequence[RequestSpec], label: str) -> list[RequestSpec]:
    """The same requests with every segment id XOR-ed with a key derived from ``label``.

    Sharing *within* the stream is unchanged (XOR with one key is a bijection); sharing with
    any stream re-keyed under another label, or not re-keyed, disappears.
    """
    key = xxhash.xxh3_64_intdigest(f"rekey:{label}".encode()) | _LOW
    out: list[RequestSpec] = []
    for request in requests:
        prompt = request.prompt
        segments = tuple(s ^ key for s in prompt.segments)
        out.append(replace(request, prompt=Prompt(prompt.n_tokens, segments, prompt.segment_tokens)))
    return out
