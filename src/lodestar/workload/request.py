"""The request stream type every workload produces and every consumer (simulator, load
generator, replay) reads.

A prompt is described by its token count and *segments*: content ids that each cover
``segment_tokens`` tokens (a Mooncake 512-token block hash id, or the content hash of a
16-token block of real text). From segments come the engine's chained 16-token block hashes
(:meth:`Prompt.block_hashes`) and, for live runs, deterministic prompt text
(:meth:`Prompt.text`) that re-tokenises to the same blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lodestar import tokenizer

DEFAULT_MODEL = "llama-3-8b"


@dataclass(frozen=True, slots=True)
class Prompt:
    """A prompt's size and prefix structure (no text stored)."""

    n_tokens: int
    segments: tuple[int, ...] = ()
    segment_tokens: int = tokenizer.BLOCK_SIZE

    def __post_init__(self) -> None:
        if self.n_tokens < 1:
            raise ValueError(f"prompt n_tokens must be >= 1, got {self.n_tokens}")
        if self.segment_tokens < 1 or self.segment_tokens % tokenizer.BLOCK_SIZE:
            raise ValueError(f"segment_tokens must be a positive multiple of {tokenizer.BLOCK_SIZE}")

    def block_hashes(self, block_size: int = tokenizer.BLOCK_SIZE) -> list[int]:
        """Chained hashes of the full ``block_size``-token blocks covered by segments."""
        return tokenizer.expand_block_hashes(self.segments, self.segment_tokens, self.n_tokens, block_size)

    def text(self) -> str:
        """Deterministic text with exactly ``n_tokens`` tokens and this prompt's prefix sharing."""
        return tokenizer.synthesize_segments(self.segments, self.segment_tokens, self.n_tokens)

    @classmethod
    def from_text(cls, text: str) -> Prompt:
        """The prompt of real text: one segment per full 16-token block."""
        ids = tokenizer.encode(text)
        if not ids:
            raise ValueError("prompt text has no tokens")
        return cls(n_tokens=len(ids), segments=tokenizer.segment_hashes(ids), segment_tokens=tokenizer.BLOCK_SIZE)


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request of a workload: when it arrives, what it asks, how long its answer is."""

    request_id: str
    arrival_s: float
    prompt: Prompt
    output_tokens: int
    model: str = DEFAULT_MODEL
    session_id: str | None = None
    tenant: str | None = None
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.output_tokens < 1:
            raise ValueError(f"output_tokens must be >= 1, got {self.output_tokens}")
        if self.arrival_s < 0:
            raise ValueError(f"arrival_s must be >= 0, got {self.arrival_s}")
