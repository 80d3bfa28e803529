"""Which requests a benchmark sends: the workload reshaped exactly as ``lodestar sim`` does it
(rate or speedup first, then the first ``duration`` seconds), optionally cut to the first
``max_requests``. Pure; inputs are not changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lodestar.workload.request import RequestSpec
from lodestar.workload.transform import scale_to_rate, speedup, time_slice


@dataclass(frozen=True)
class Shaping:
    """``rate_rps``: mean rate to rescale to; ``speedup``: divide arrival times by it (not both);
    ``duration_s``: keep arrivals in ``[0, duration_s)``; ``max_requests``: keep the first N."""

    rate_rps: float | None = None
    speedup: float | None = None
    duration_s: float | None = None
    max_requests: int | None = None


def shape(requests: Sequence[RequestSpec], shaping: Shaping) -> list[RequestSpec]:
    """The requests to send, sorted by arrival; ``ValueError`` with a readable message."""
    if shaping.rate_rps is not None and shaping.speedup is not None:
        raise ValueError("give --rate or --speedup, not both")
    out = sorted(requests, key=lambda r: r.arrival_s)
    if shaping.rate_rps is not None:
        out = scale_to_rate(out, shaping.rate_rps)
    elif shaping.speedup is not None:
        out = speedup(out, shaping.speedup)
    if shaping.duration_s is not None:
        out = time_slice(out, 0.0, shaping.duration_s)
    if shaping.max_requests is not None:
        if shaping.max_requests < 1:
            raise ValueError(f"--max-requests must be >= 1, got {shaping.max_requests}")
        out = out[: shaping.max_requests]
    return out
