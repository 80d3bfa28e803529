"""Request-length distributions that generators sample (input tokens, output tokens).

A :class:`LengthDistribution` is plain data: the caller owns the random generator and passes
it to :meth:`~LengthDistribution.sample`, so a seeded generator gives a reproducible stream.
Every sampled count is >= 1 token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from lodestar.workload.request import RequestSpec

IntArray = npt.NDArray[np.int64]


class LengthDistribution(Protocol):
    """Where (input_tokens, output_tokens) pairs come from."""

    @property
    def name(self) -> str: ...

    def sample(self, rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
        """``n`` input and ``n`` output token counts (int64 arrays, every value >= 1)."""
        ...


def _positive_ints(values: npt.ArrayLike, what: str) -> IntArray:
    arr = np.asarray(values, dtype=np.int64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what} must be a non-empty 1-d sequence")
    if int(arr.min()) < 1:
        raise ValueError(f"{what} must all be >= 1 token, got {int(arr.min())}")
    return arr


@dataclass(frozen=True, eq=False)
class EmpiricalLengths:
    """Paired (input, output) samples, e.g. the rows of a trace; sampling draws whole rows
    uniformly with replacement, so the input/output correlation of the source is kept."""

    name: str
    input_tokens: IntArray
    output_tokens: IntArray

    def __post_init__(self) -> None:
        inputs = _positive_ints(self.input_tokens, "input_tokens")
        outputs = _positive_ints(self.output_tokens, "output_tokens")
        if inputs.shape != outputs.shape:
            raise ValueError(f"{inputs.size} input lengths but {outputs.size} output lengths")
        object.__setattr__(self, "input_tokens", inputs)
        object.__setattr__(self, "output_tokens", outputs)

    @classmethod
    def from_requests(cls, name: str, requests: Sequence[RequestSpec]) -> EmpiricalLengths:
        """The lengths of a loaded trace, as a distribution to resample."""
        return cls(
            name=name,
            input_tokens=np.fromiter((r.prompt.n_tokens for r in requests), np.int64, len(requests)),
            output_tokens=np.fromiter((r.output_tokens for r in requests), np.int64, len(requests)),
        )

    def sample(self, rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
        rows = rng.integers(0, self.input_tokens.size, size=n)
        return self.input_tokens[rows], self.output_tokens[rows]


@dataclass(frozen=True, eq=False)
class PmfLengths:
    """Independent input and output length distributions, each a probability mass function
    (values with probabilities; probabilities are renormalised to sum to 1)."""

    name: str
    input_values: IntArray
    input_probs: npt.NDArray[np.float64]
    output_values: IntArray
    output_probs: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        for side in ("input", "output"):
            values = _positive_ints(getattr(self, f"{side}_values"), f"{side}_values")
            probs = np.asarray(getattr(self, f"{side}_probs"), dtype=np.float64)
            if probs.shape != values.shape or not np.all(np.isfinite(probs)) or float(probs.min()) < 0:
                raise ValueError(f"{side}_probs must be finite, >= 0 and one per value")
            total = float(probs.sum())
            if total <= 0:
                raise ValueError(f"{side}_probs sum to {total}, expected > 0")
            object.__setattr__(self, f"{side}_values", values)
            object.__setattr__(self, f"{side}_probs", probs / total)

    def sample(self, rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
        inputs = rng.choice(self.input_values, size=n, p=self.input_probs)
        outputs = rng.choice(self.output_values, size=n, p=self.output_probs)
        return inputs, outputs


@dataclass(frozen=True)
class UniformLengths:
    """Input and output lengths uniform on inclusive integer ranges."""

    name: str
    input_min: int
    input_max: int
    output_min: int
    output_max: int

    def __post_init__(self) -> None:
        if not (1 <= self.input_min <= self.input_max and 1 <= self.output_min <= self.output_max):
            raise ValueError(f"need 1 <= min <= max for both ranges, got {self}")

    def sample(self, rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
        inputs = rng.integers(self.input_min, self.input_max, size=n, endpoint=True, dtype=np.int64)
        outputs = rng.integers(self.output_min, self.output_max, size=n, endpoint=True, dtype=np.int64)
        return inputs, outputs


@dataclass(frozen=True)
class FixedLengths:
    """Every request has the same input and output length (tests, calibration sweeps)."""

    name: str
    input_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        if self.input_tokens < 1 or self.output_tokens < 1:
            raise ValueError(f"fixed lengths must be >= 1, got {self.input_tokens}, {self.output_tokens}")

    def sample(self, rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
        return np.full(n, self.input_tokens, dtype=np.int64), np.full(n, self.output_tokens, dtype=np.int64)
