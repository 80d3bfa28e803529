"""ServeGen clients as request streams: per-window renewal arrivals plus time-varying lengths.

In window ``w`` (``rate_rps`` r, ``pattern`` Gamma or Weibull with ``shape`` k) the gaps are
drawn from the pattern with shape k and rescaled to mean ``1/r``, as ServeGen does (so the
``scale`` column does not matter; the ``cv`` column is informational: the CV comes from k).
The first arrival of a window falls uniformly inside its first gap; arrivals past the window
end are dropped, so counts per window vary around ``r·window_s``.

Each window draws from its own generator, seeded by ``(seed, window index)``: a window's
requests are the same whatever time range is asked for. Lengths come from the dataset period
in force at the window's start. There is no prefix information: prompts get fresh segments.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lodestar.workload.request import DEFAULT_MODEL, Prompt, RequestSpec
from lodestar.workload.segments import SegmentIds, random_segment_base
from lodestar.workload.traces.servegen import ArrivalWindow, ServeGenClient

SEGMENT_TOKENS = 512


def window_times(window: ArrivalWindow, window_s: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Arrival times (client clock, s) inside one window."""
    if window.rate_rps <= 0 or not window.pattern:
        return np.empty(0)
    end_s = window.start_s + window_s
    batch = int(window.rate_rps * window_s * 1.5 + 16)
    gaps = _unit_gaps(window, rng, batch) / window.rate_rps
    times = window.start_s + float(rng.uniform()) * float(gaps[0]) + np.concatenate(([0.0], np.cumsum(gaps[1:])))
    chunks = [times]
    while times[-1] < end_s:
        times = times[-1] + np.cumsum(_unit_gaps(window, rng, batch) / window.rate_rps)
        chunks.append(times)
    all_times = np.concatenate(chunks)
    return all_times[all_times < end_s]


def _unit_gaps(window: ArrivalWindow, rng: np.random.Generator, n: int) -> npt.NDArray[np.float64]:
    """``n`` gaps of the window's pattern and shape, rescaled to mean 1."""
    k = window.shape
    if window.pattern == "gamma":
        return rng.gamma(k, 1.0 / k, size=n)
    return rng.weibull(k, size=n) / math.gamma(1.0 + 1.0 / k)


@dataclass(frozen=True)
class ServeGenArrivals:
    """A ServeGen client's arrival process alone, from ``start_s`` of its clock (an
    :class:`~lodestar.workload.arrivals.ArrivalProcess`: pair it with any
    :class:`~lodestar.workload.generator.RequestGenerator` for other prompts). Same seed, same
    times as :func:`servegen_requests`."""

    client: ServeGenClient
    start_s: float = 0.0
    seed: int = 0

    def times(self, duration_s: float) -> npt.NDArray[np.float64]:
        """Arrival times in [0, duration_s), re-based so ``start_s`` is 0."""
        parts = [times for _, _, times in _windows(self.client, self.start_s, duration_s, self.seed)]
        all_times = np.concatenate(parts) if parts else np.empty(0)
        kept = all_times[(all_times >= self.start_s) & (all_times < self.start_s + duration_s)]
        return kept - self.start_s


def servegen_requests(
    client: ServeGenClient,
    start_s: float,
    duration_s: float,
    seed: int = 0,
    *,
    model: str = DEFAULT_MODEL,
) -> list[RequestSpec]:
    """The client's requests arriving in [start_s, start_s + duration_s) of its clock,
    re-based so ``start_s`` is 0 (window start, not first request). Request ids are
    ``<client>:w<window>:<k>``."""
    end_s = start_s + duration_s
    ids = SegmentIds(random_segment_base(np.random.default_rng([seed, 1 << 32])))
    out: list[RequestSpec] = []
    for index, rng, times in _windows(client, start_s, duration_s, seed):
        inputs, outputs = client.lengths_at(client.windows[index].start_s).sample(rng, times.size)
        for k, t in enumerate(times):
            if not start_s <= t < end_s:
                continue
            n_tokens = int(inputs[k])
            prompt = Prompt(n_tokens, ids.cover(n_tokens, SEGMENT_TOKENS), SEGMENT_TOKENS)
            out.append(RequestSpec(f"{client.name}:w{index}:{k}", float(t - start_s), prompt, int(outputs[k]), model))
    return out


def _windows(
    client: ServeGenClient, start_s: float, duration_s: float, seed: int
) -> Iterator[tuple[int, np.random.Generator, npt.NDArray[np.float64]]]:
    """(window index, its generator after drawing times, its whole-window times) of every
    non-empty window overlapping [start_s, start_s + duration_s)."""
    if not (math.isfinite(start_s) and start_s >= 0 and math.isfinite(duration_s) and duration_s > 0):
        raise ValueError(f"need start_s >= 0 and duration_s > 0, got {start_s}, {duration_s}")
    end_s = start_s + duration_s
    for index, window in enumerate(client.windows):
        if window.start_s + client.window_s <= start_s or window.start_s >= end_s:
            continue
        rng = np.random.default_rng([seed, index])
        times = window_times(window, client.window_s, rng)
        if times.size:
            yield index, rng, times
