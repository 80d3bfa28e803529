"""A Prometheus-style histogram that takes weighted observations.

``prometheus_client.Histogram`` observes one value per call under a lock; the emulator observes
a decode run's inter-token gap once for every request in the batch, so it counts ``n`` equal
observations in one call. Exposed through :class:`~lodestar.emulator.metrics.MetricsCollector`.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field

from lodestar.emulator.exposition import go_float


@dataclass
class Histogram:
    """Cumulative-on-export histogram over upper bounds ``buckets`` (ascending, +Inf implied)."""

    buckets: Sequence[float]
    counts: list[int] = field(init=False)
    _les: list[str] = field(init=False, repr=False)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if list(self.buckets) != sorted(self.buckets) or len(set(self.buckets)) != len(self.buckets):
            raise ValueError("histogram buckets must be strictly ascending")
        self.counts = [0] * (len(self.buckets) + 1)
        self._les = [go_float(b) for b in self.buckets]

    def observe(self, value: float, n: int = 1) -> None:
        """Record ``n`` observations of ``value``; a value equal to a bound falls in that bucket."""
        self.counts[bisect.bisect_left(self.buckets, value)] += n
        self.total += value * n
        self.count += n

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs as the exposition format wants them, ending with ``+Inf``."""
        out: list[tuple[str, float]] = []
        running = 0
        for le, c in zip(self._les, self.counts, strict=False):
            running += c
            out.append((le, float(running)))
        out.append(("+Inf", float(self.count)))
        return out


def one_two_five(max_value: int) -> list[float]:
    """vLLM's 1-2-5 buckets up to ``max_value`` (token-count histograms)."""
    out: list[float] = []
    scale = 1
    while True:
        for m in (1, 2, 5):
            if m * scale > max_value:
                return out
            out.append(float(m * scale))
        scale *= 10
