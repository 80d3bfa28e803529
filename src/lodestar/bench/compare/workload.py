"""The workload every router gets: a fixed slice of a trace at a load fraction of the fleet.

The rate is ``load`` × the fleet's measured capacity on the trace
(:func:`lodestar.sim.capacity.fleet_capacity`, what ``lodestar sim --load`` uses); the trace is
rescaled to it, then two disjoint windows are cut: the measured one ``[start, start +
duration)`` and the warm-up one (only Lodestar warmed replays it). Both are written as
``lodestar-jsonl`` files (every request rebuilt exactly), so each ``lodestar bench run`` replays
byte-identical requests at identical times. Deterministic: no randomness beyond the trace's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lodestar.cluster.spec import ClusterSpec
from lodestar.sim.capacity import fleet_capacity
from lodestar.workload.request import RequestSpec
from lodestar.workload.traces.lodestar_jsonl import dump_requests
from lodestar.workload.transform import scale_to_rate, time_slice


@dataclass(frozen=True)
class PreparedWorkload:
    name: str
    capacity_rps: float
    rate_rps: float
    measure: list[RequestSpec]
    warmup: list[RequestSpec]
    measure_file: Path
    warmup_file: Path

    def describe(self) -> dict[str, object]:
        def stats(reqs: Sequence[RequestSpec]) -> dict[str, float]:
            n = len(reqs)
            return {
                "requests": n,
                "prompt_tokens_mean": sum(r.prompt.n_tokens for r in reqs) / n if n else 0.0,
                "output_tokens_mean": sum(r.output_tokens for r in reqs) / n if n else 0.0,
            }

        return {
            "workload": self.name,
            "capacity_rps": self.capacity_rps,
            "rate_rps": self.rate_rps,
            "measure": {**stats(self.measure), "file": str(self.measure_file)},
            "warmup": {**stats(self.warmup), "file": str(self.warmup_file)},
        }


def slices(
    requests: Sequence[RequestSpec],
    rate_rps: float,
    start_s: float,
    duration_s: float,
    warmup_start_s: float,
    warmup_duration_s: float,
) -> tuple[list[RequestSpec], list[RequestSpec]]:
    """(measured, warm-up) windows of ``requests`` rescaled to ``rate_rps`` (each re-based to 0)."""
    scaled = scale_to_rate(sorted(requests, key=lambda r: r.arrival_s), rate_rps)
    return time_slice(scaled, start_s, duration_s), time_slice(scaled, warmup_start_s, warmup_duration_s)


def prepare(
    cluster: ClusterSpec,
    name: str,
    requests: Sequence[RequestSpec],
    load: float,
    start_s: float,
    duration_s: float,
    warmup_start_s: float,
    warmup_duration_s: float,
    out_dir: Path,
) -> PreparedWorkload:
    """Measure the capacity, cut the slices, write them to ``out_dir``; ValueError when the
    fleet cannot serve the trace or the measured window is (nearly) empty. An empty warm-up
    window is refused only by a run that needs it (Lodestar warmed)."""
    capacity = fleet_capacity(cluster, requests).total_rps
    if capacity <= 0:
        raise ValueError(f"{cluster.name} cannot serve any request of {name}")
    rate = load * capacity
    measure, warmup = slices(requests, rate, start_s, duration_s, warmup_start_s, warmup_duration_s)
    if len(measure) < 2:
        raise ValueError(f"the measured window of {name} holds {len(measure)} request(s) at {rate:.3f} req/s")
    out_dir.mkdir(parents=True, exist_ok=True)
    measure_file, warmup_file = out_dir / "workload-measure.jsonl", out_dir / "workload-warmup.jsonl"
    measure_file.write_text(dump_requests(measure), encoding="utf-8")
    warmup_file.write_text(dump_requests(warmup), encoding="utf-8")
    return PreparedWorkload(name, capacity, rate, measure, warmup, measure_file, warmup_file)
