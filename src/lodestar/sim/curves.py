"""Time series of a run: rolling mean TTFT, and how long until it settles near steady state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lodestar.sim.results import RequestRecord


@dataclass(frozen=True)
class Curve:
    t_s: list[float]
    mean_ttft_s: list[float]


def rolling_ttft(records: Sequence[RequestRecord], window_s: float = 60.0, step_s: float = 10.0) -> Curve:
    """Mean TTFT of requests arriving in ``[t − window_s, t)``, every ``step_s``."""
    pts = sorted((r.arrival_s, r.ttft_s) for r in records if r.ttft_s is not None)
    if not pts:
        return Curve([], [])
    arr = np.array([p[0] for p in pts])
    ttft = np.array([p[1] for p in pts])
    csum = np.concatenate([[0.0], np.cumsum(ttft)])
    ts, means = [], []
    t = window_s
    end = float(arr[-1])
    while t <= end + step_s:
        lo, hi = np.searchsorted(arr, t - window_s), np.searchsorted(arr, t)
        if hi > lo:
            ts.append(t)
            means.append(float((csum[hi] - csum[lo]) / (hi - lo)))
        t += step_s
    return Curve(ts, means)


def settle_time_s(curve: Curve, steady_from_s: float, tolerance: float = 0.10, start_s: float = 0.0) -> float | None:
    """Time (from ``start_s``) after which the rolling mean stays within ``tolerance`` of its
    steady state, the mean of the curve from ``steady_from_s`` on; None if it never does."""
    steady = [m for t, m in zip(curve.t_s, curve.mean_ttft_s, strict=True) if t >= steady_from_s]
    if not steady:
        return None
    level = float(np.mean(steady))
    settled: float | None = None
    for t, m in zip(curve.t_s, curve.mean_ttft_s, strict=True):
        if t < start_s:
            continue
        if abs(m - level) <= tolerance * level:
            if settled is None:
                settled = t
        else:
            settled = None
    return None if settled is None else settled - start_s
