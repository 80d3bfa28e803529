"""Which requests a benchmark sends: the workload reshaped exactly as ``lodestar sim`` does it
(rate or speedup first, then the first ``duration`` seconds), optionally cut to the first
``max_requests``. Pure; inputs are not changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lodestar.workload.request import RequestSpec
from lodestar.workload.transform import mean_rate_rps, scale_to_rate, speedup, time_slice


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


def window_rps(sent: Sequence[RequestSpec]) -> float | None:
    """The mean rate of the requests sent; None for one request, or all at once."""
    if len(sent) < 2 or sent[-1].arrival_s <= sent[0].arrival_s:
        return None
    return mean_rate_rps(sent)


#: how far the sent window's own rate may be from ``--rate`` before the CLI says why
RATE_NOTE_TOLERANCE = 0.25


def window_rate_note(rate_rps: float | None, window_rps: float | None) -> str | None:
    """Why the requests sent arrive at ``window_rps`` rather than the ``--rate`` asked for, or ``None``.

    ``--rate`` rescales the whole workload (as ``lodestar sim --rate`` does), so a window of a
    real trace keeps the trace's own ups and downs: azure-conv's first minute is quieter than its
    hour. Said when the window's rate is more than 25 % off; nothing without ``--rate`` or
    without a window rate (one request, or all at once)."""
    if rate_rps is None or window_rps is None:
        return None
    if abs(window_rps - rate_rps) <= RATE_NOTE_TOLERANCE * rate_rps:
        return None
    return (
        f"note: --rate {rate_rps:g} is the mean rate of the whole workload; the window sent "
        f"arrives at {window_rps:.2f} req/s (the trace's own shape). For {rate_rps:g} req/s in this "
        f"window, scale by --speedup instead."
    )
