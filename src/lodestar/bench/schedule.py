"""Open-loop schedule arithmetic: when each request is sent, where, and how late it went.

Two clocks: *workload* time (the trace's ``arrival_s``, what the simulator runs on) and *wall*
time. With time scale ``S`` (a ``lodestar emulate --time-scale S`` on the other end, where every
emulated second takes ``S`` wall seconds) request ``i`` is due ``arrival_s × S`` wall seconds
after the start, and every wall duration measured is divided by ``S`` to report it in workload
seconds. ``S = 1`` is real time. Pure functions; no clock is read here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lodestar.workload.request import RequestSpec


@dataclass(frozen=True, slots=True)
class TimeScale:
    """Wall seconds per workload second (> 0)."""

    factor: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"time scale must be finite and > 0, got {self.factor}")

    def to_wall(self, workload_s: float) -> float:
        return workload_s * self.factor

    def to_workload(self, wall_s: float) -> float:
        return wall_s / self.factor

    def opt_to_workload(self, wall_s: float | None) -> float | None:
        return None if wall_s is None else wall_s / self.factor


@dataclass(frozen=True, slots=True)
class Send:
    """Request ``request`` goes to ``url`` at ``due_wall_s`` wall seconds after the start."""

    index: int
    request: RequestSpec
    url: str
    due_wall_s: float


def plan_sends(requests: Sequence[RequestSpec], urls: Sequence[str], scale: TimeScale) -> list[Send]:
    """Sends in arrival order; base URLs taken round-robin (``k``-th request → ``urls[k % n]``).

    The first request is due at ``(arrival_s − first arrival) × S``: a workload slice that
    starts late does not make the run wait.
    """
    if not urls:
        raise ValueError("at least one base URL is needed")
    ordered = sorted(requests, key=lambda r: r.arrival_s)
    t0 = ordered[0].arrival_s if ordered else 0.0
    return [
        Send(index=k, request=r, url=urls[k % len(urls)], due_wall_s=scale.to_wall(r.arrival_s - t0))
        for k, r in enumerate(ordered)
    ]


@dataclass(frozen=True)
class LagStats:
    """How late requests left the client (wall seconds after they were due; never negative).

    A client that keeps up sends within a few milliseconds; a large lag means the load
    generator, not the server, set the pace, and the measured latencies understate queueing.
    """

    n: int
    mean_s: float
    p50_s: float
    p99_s: float
    max_s: float
    late_frac: float  # fraction later than the warning threshold

    @classmethod
    def of(cls, lags_s: Sequence[float], warn_s: float) -> LagStats:
        a = np.maximum(np.asarray(lags_s, dtype=float), 0.0)
        if not a.size:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        return cls(
            n=int(a.size),
            mean_s=float(a.mean()),
            p50_s=float(np.percentile(a, 50)),
            p99_s=float(np.percentile(a, 99)),
            max_s=float(a.max()),
            late_frac=float((a > warn_s).mean()),
        )

    def too_late(self, warn_s: float) -> bool:
        """The warning rule: the p99 send lag exceeds ``warn_s``."""
        return self.p99_s > warn_s
