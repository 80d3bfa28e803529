"""Rate scaling and time slicing of a request stream (pure functions; inputs are not changed).

Every function takes and returns a stream sorted by ``arrival_s``. The mean rate of a stream
is ``len(requests) / span_s`` with ``span_s = last arrival - first arrival`` (as in
:func:`lodestar.workload.summary.summarize`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from lodestar.workload.request import RequestSpec


def mean_rate_rps(requests: Sequence[RequestSpec]) -> float:
    """``n / span_s``; ``ValueError`` for fewer than 2 requests or a zero span."""
    if len(requests) < 2:
        raise ValueError(f"a mean rate needs at least 2 requests, got {len(requests)}")
    span_s = requests[-1].arrival_s - requests[0].arrival_s
    if span_s <= 0:
        raise ValueError("all requests arrive at the same time: the mean rate is undefined")
    return len(requests) / span_s


def speedup(requests: Sequence[RequestSpec], factor: float) -> list[RequestSpec]:
    """Replay at ``factor``× the rate: every arrival time divided by ``factor`` (> 0)."""
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"speedup factor must be finite and > 0, got {factor}")
    if factor == 1.0:
        return list(requests)
    return [replace(r, arrival_s=r.arrival_s / factor) for r in requests]


def scale_to_rate(requests: Sequence[RequestSpec], target_rps: float) -> list[RequestSpec]:
    """Compress or stretch arrival times so the mean rate is ``target_rps`` (> 0)."""
    if not (math.isfinite(target_rps) and target_rps > 0):
        raise ValueError(f"target_rps must be finite and > 0, got {target_rps}")
    return speedup(requests, target_rps / mean_rate_rps(requests))


def time_slice(requests: Sequence[RequestSpec], start_s: float, duration_s: float | None = None) -> list[RequestSpec]:
    """Requests arriving in [start_s, start_s + duration_s) (to the end when ``duration_s`` is
    ``None``), re-based so the window start is 0 s: ``arrival_s - start_s``. The first kept
    request is at 0 s only if one arrived exactly at ``start_s``. May return an empty list."""
    if not (math.isfinite(start_s) and start_s >= 0):
        raise ValueError(f"slice start_s must be finite and >= 0, got {start_s}")
    if duration_s is not None and not duration_s > 0:
        raise ValueError(f"slice duration_s must be > 0, got {duration_s}")
    end_s = math.inf if duration_s is None else start_s + duration_s
    return [replace(r, arrival_s=r.arrival_s - start_s) for r in requests if start_s <= r.arrival_s < end_s]
