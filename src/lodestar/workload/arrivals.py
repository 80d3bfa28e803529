"""Stationary arrival processes: Poisson and Gamma renewal processes.

Each process owns its ``numpy.random.Generator`` seeded from ``seed``; successive calls
continue one random stream, so build a new process (same seed) to replay a stream.
Non-stationary rates (ramps, day/night) come from warping these times
(:mod:`lodestar.workload.drift`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class ArrivalProcess(Protocol):
    """Arrival times over an observation window that starts at 0 s."""

    def times(self, duration_s: float) -> FloatArray:
        """Sorted arrival times in [0, ``duration_s``), in seconds."""
        ...


@dataclass
class GammaArrivals:
    """Renewal process with Gamma inter-arrival gaps: mean gap ``1 / rate_rps`` and
    coefficient of variation ``cv`` (shape ``1/cv**2``, scale ``cv**2 / rate_rps``).

    ``cv = 1`` is a Poisson process; ``cv > 1`` is burstier (gaps cluster), ``cv < 1`` more
    regular. The process starts fresh at 0 (the first gap is a full gap).
    """

    rate_rps: float
    cv: float = 1.0
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_rps) and self.rate_rps > 0):
            raise ValueError(f"rate_rps must be finite and > 0, got {self.rate_rps}")
        if not (math.isfinite(self.cv) and self.cv > 0):
            raise ValueError(f"cv must be finite and > 0, got {self.cv}")
        self._rng = np.random.default_rng(self.seed)

    def gaps(self, n: int) -> FloatArray:
        """``n`` inter-arrival gaps (s)."""
        shape = 1.0 / self.cv**2
        return self._rng.gamma(shape, 1.0 / (shape * self.rate_rps), size=n)

    def times(self, duration_s: float) -> FloatArray:
        return renewal_times(self.gaps, self.rate_rps, self.cv, duration_s)


@dataclass
class PoissonArrivals:
    """Poisson process of rate ``rate_rps`` (exponential gaps)."""

    rate_rps: float
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate_rps) and self.rate_rps > 0):
            raise ValueError(f"rate_rps must be finite and > 0, got {self.rate_rps}")
        self._rng = np.random.default_rng(self.seed)

    def gaps(self, n: int) -> FloatArray:
        """``n`` inter-arrival gaps (s)."""
        return self._rng.exponential(1.0 / self.rate_rps, size=n)

    def times(self, duration_s: float) -> FloatArray:
        return renewal_times(self.gaps, self.rate_rps, 1.0, duration_s)


class _GapSource(Protocol):
    def __call__(self, n: int) -> FloatArray: ...


def renewal_times(gaps: _GapSource, rate_rps: float, cv: float, duration_s: float) -> FloatArray:
    """Cumulative sums of ``gaps`` batches until they pass ``duration_s``; times < duration."""
    if not (math.isfinite(duration_s) and duration_s >= 0):
        raise ValueError(f"duration_s must be finite and >= 0, got {duration_s}")
    expected = rate_rps * duration_s
    batch = int(expected + 4.0 * cv * math.sqrt(expected) + 16)
    chunks: list[FloatArray] = []
    end = 0.0
    while end < duration_s:
        times = end + np.cumsum(gaps(batch))
        chunks.append(times)
        end = float(times[-1])
        batch = max(16, batch // 4)
    times = np.concatenate(chunks) if chunks else np.empty(0)
    return times[times < duration_s]
