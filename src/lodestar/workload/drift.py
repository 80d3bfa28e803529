"""Drift schedules: rate changes over time (ramp, compressed day/night cycle) and a switch of
the prompt mix at a time T. (Instance slowdowns are engine faults: see ``faults.py``.)

Rate drift works by *time warping*. A stream with a stationary base rate ``r`` (a generated
process, or a trace) lives on a base clock ``b``; the output clock ``t`` is chosen so that
``b = M(t) = ∫₀ᵗ f(u) du`` where ``f`` is the product of the rate multipliers. The output
rate is then ``r·f(t)``, and the burstiness (CV) of the base process is kept at every rate.
``M`` is integrated with the trapezoid rule on a grid of ``feature_s / 512`` steps (at most
4M points, so very long horizons with short features get a coarser grid) and inverted by
interpolation (relative error below 1e-5 at full resolution).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from lodestar.workload.request import RequestSpec

FloatArray = npt.NDArray[np.float64]
_STEPS_PER_FEATURE = 512
_MIN_GRID, _MAX_GRID = 1 << 10, 1 << 22


class RateMultiplier(Protocol):
    """A positive factor on the base arrival rate as a function of output time."""

    def factor(self, t_s: FloatArray) -> FloatArray: ...

    @property
    def min_factor(self) -> float:
        """A lower bound of :meth:`factor` (> 0)."""
        ...

    @property
    def feature_s(self) -> float:
        """The shortest time scale (s) over which the factor changes."""
        ...


@dataclass(frozen=True)
class RateRamp:
    """Factor ``start_factor`` until ``start_s``, linear to ``end_factor`` at ``end_s``, then
    ``end_factor`` (factors > 0; ``end_s > start_s``)."""

    start_s: float
    end_s: float
    end_factor: float
    start_factor: float = 1.0

    def __post_init__(self) -> None:
        if not (0 <= self.start_s < self.end_s and math.isfinite(self.end_s)):
            raise ValueError(f"need 0 <= start_s < end_s, got {self.start_s}, {self.end_s}")
        if not (self.start_factor > 0 and self.end_factor > 0):
            raise ValueError(f"ramp factors must be > 0, got {self.start_factor}, {self.end_factor}")

    def factor(self, t_s: FloatArray) -> FloatArray:
        return np.interp(t_s, [self.start_s, self.end_s], [self.start_factor, self.end_factor])

    @property
    def min_factor(self) -> float:
        return min(self.start_factor, self.end_factor)

    @property
    def feature_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class DayNightCycle:
    """A day compressed into ``period_s``: factor ``1 + amplitude·sin(2π(t − phase_s)/period_s)``
    (0 <= amplitude < 1). The mean factor over a whole period is 1; the peak-to-trough rate
    ratio is ``(1 + amplitude)/(1 − amplitude)``."""

    period_s: float
    amplitude: float
    phase_s: float = 0.0

    def __post_init__(self) -> None:
        if not (self.period_s > 0 and math.isfinite(self.period_s)):
            raise ValueError(f"period_s must be finite and > 0, got {self.period_s}")
        if not 0 <= self.amplitude < 1:
            raise ValueError(f"amplitude must be in [0, 1), got {self.amplitude}")

    def factor(self, t_s: FloatArray) -> FloatArray:
        return 1.0 + self.amplitude * np.sin(2 * np.pi * (np.asarray(t_s) - self.phase_s) / self.period_s)

    @property
    def min_factor(self) -> float:
        return 1.0 - self.amplitude

    @property
    def feature_s(self) -> float:
        return self.period_s


@dataclass(frozen=True)
class TimeWarp:
    """The product of ``multipliers`` as a map between base and output clocks (identity when
    there are none)."""

    multipliers: tuple[RateMultiplier, ...] = ()

    @property
    def is_identity(self) -> bool:
        return not self.multipliers

    def factor(self, t_s: FloatArray) -> FloatArray:
        out = np.ones_like(np.asarray(t_s, dtype=np.float64))
        for multiplier in self.multipliers:
            out = out * multiplier.factor(t_s)
        return out

    def base_time(self, t_s: float) -> float:
        """``M(t)``: the base-clock time that maps to output time ``t_s``."""
        if self.is_identity or t_s <= 0:
            return t_s
        grid, cumulative = self._grid(t_s)
        return float(np.interp(t_s, grid, cumulative))

    def output_times(self, base_s: FloatArray) -> FloatArray:
        """``M⁻¹``: output-clock times of base-clock times (vectorised, order kept)."""
        base = np.asarray(base_s, dtype=np.float64)
        if self.is_identity or base.size == 0:
            return base
        lower = math.prod(m.min_factor for m in self.multipliers)
        horizon = float(base.max()) / lower
        grid, cumulative = self._grid(horizon)
        return np.interp(base, cumulative, grid)

    def apply(self, requests: Sequence[RequestSpec]) -> list[RequestSpec]:
        """The requests with arrival times moved from the base clock to the output clock."""
        if self.is_identity:
            return list(requests)
        times = self.output_times(np.array([r.arrival_s for r in requests]))
        return [replace(r, arrival_s=float(t)) for r, t in zip(requests, times, strict=True)]

    def _grid(self, horizon_s: float) -> tuple[FloatArray, FloatArray]:
        step = min(m.feature_s for m in self.multipliers) / _STEPS_PER_FEATURE
        n = int(min(max(math.ceil(horizon_s / step) + 1, _MIN_GRID), _MAX_GRID))
        grid = np.linspace(0.0, horizon_s, n)
        f = self.factor(grid)
        cumulative = np.concatenate(([0.0], np.cumsum((f[1:] + f[:-1]) * (0.5 * (grid[1] - grid[0])))))
        return grid, cumulative


def switch_at(before: Sequence[RequestSpec], after: Sequence[RequestSpec], at_s: float) -> list[RequestSpec]:
    """A prompt-mix shift: ``before``'s requests arriving before ``at_s``, then ``after``'s
    arriving at or after it (both on one clock), merged in arrival order."""
    head = [r for r in before if r.arrival_s < at_s]
    tail = [r for r in after if r.arrival_s >= at_s]
    return head + tail
