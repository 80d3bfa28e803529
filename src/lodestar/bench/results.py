"""A benchmark's results in the simulator's terms, and its JSON file.

Every request becomes a :class:`lodestar.sim.results.RequestRecord` (times in *workload*
seconds: wall measurements divided by the time scale) and the run's headline figures are
:func:`lodestar.sim.results.summarize` of those records, so ``lodestar bench --json`` and
``lodestar sim --json`` carry the same ``runs[].summary`` object. What only a live run has
(send lag, HTTP status, where it went) rides along in :class:`BenchRecord`.

The JSON file: the run's metadata at the top level (as ``lodestar sim`` writes it), ``runs``
(one entry: ``policy`` = the run's label, ``seed`` 0, ``summary``), the same ``summary`` at the
top level for readers of one run, ``latency`` (mean and percentiles of TTFT, TPOT, E2E),
``errors`` (count per class), ``send_lag_wall``, ``client``, ``gateway_wall_ms`` (the Lodestar
gateway's own time per request, from its ``Server-Timing`` header; null when no answer had it)
and ``records`` (one flat object per request: the RequestRecord fields, then the bench fields).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from lodestar.bench.client import RunStats, SendResult
from lodestar.bench.schedule import LagStats, TimeScale
from lodestar.sim.results import RequestRecord, Summary, summarize

FORMAT = "lodestar-bench/1"
_RECORD_FIELDS = tuple(f.name for f in fields(RequestRecord))


@dataclass(frozen=True, slots=True)
class BenchRecord:
    """A request's record plus what the live run adds: the workload time it was due
    (``scheduled_s``), how late it left the client (``send_lag_s``, workload seconds), the base
    URL, HTTP status, the length asked for, the server's prompt count, an error detail, and
    when the response headers came (``headers_s`` after the send; vLLM and the emulator send
    them once the request is admitted, so this is the server's request-handling time), and
    ``gateway_wall_ms``: the ``gateway`` entry of a Lodestar gateway's ``Server-Timing`` header,
    its own time before the upstream request — in *wall* milliseconds, never time-scaled: it
    is the router's real processing, not the emulated engine's time."""

    record: RequestRecord
    scheduled_s: float
    send_lag_s: float
    url: str
    http_status: int | None
    requested_output_tokens: int
    server_prompt_tokens: int | None = None
    detail: str | None = None
    headers_s: float | None = None
    gateway_wall_ms: float | None = None

    def to_json(self) -> dict[str, Any]:
        extra = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "record"}
        return {**asdict(self.record), **extra}

    @classmethod
    def from_json(cls, row: Mapping[str, Any]) -> BenchRecord:
        record = RequestRecord(**{k: row[k] for k in _RECORD_FIELDS if k in row})
        extra = {f.name: row[f.name] for f in fields(cls) if f.name != "record" and f.name in row}
        return cls(record=record, **extra)


def to_records(results: Sequence[SendResult], scale: TimeScale, t0_s: float = 0.0) -> list[BenchRecord]:
    """Wall-clock results → workload-time records. ``t0_s``: the workload time of the run's
    start (the first request's arrival), so ``arrival_s`` lines up with the trace's clock."""
    out: list[BenchRecord] = []
    for res in results:
        o, req = res.outcome, res.send.request
        arrival = t0_s + scale.to_workload(res.sent_wall_s)
        e2e = scale.opt_to_workload(o.e2e_s)
        record = RequestRecord(
            request_id=req.request_id,
            instance_id=res.served_by or res.send.url,
            arrival_s=arrival,
            prompt_tokens=req.prompt.n_tokens,
            output_tokens=o.output_tokens,
            ttft_s=scale.opt_to_workload(o.ttft_s),
            tpot_s=scale.opt_to_workload(o.tpot_s),
            e2e_s=e2e,
            finish_s=None if e2e is None else arrival + e2e,
            explore=res.decision == "explore",
            fallback=res.decision is not None and res.decision.startswith(("fallback", "heuristic")),
            error=o.error,
        )
        out.append(
            BenchRecord(
                record=record,
                scheduled_s=t0_s + scale.to_workload(res.send.due_wall_s),
                send_lag_s=scale.to_workload(res.lag_wall_s),
                url=res.send.url,
                http_status=res.http_status,
                requested_output_tokens=req.output_tokens,
                server_prompt_tokens=o.prompt_tokens,
                detail=o.detail,
                headers_s=scale.opt_to_workload(o.headers_s),
                gateway_wall_ms=res.gateway_ms,
            )
        )
    return out


class Stats(BaseModel):
    """Mean and percentiles of one latency (seconds; NaN when nothing was measured)."""

    model_config = ConfigDict(frozen=True)

    n: int
    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Stats:
        a = np.asarray(values, dtype=float)
        if not a.size:
            nan = float("nan")
            return cls(n=0, mean=nan, p50=nan, p90=nan, p99=nan)
        p50, p90, p99 = (float(v) for v in np.percentile(a, [50, 90, 99]))
        return cls(n=int(a.size), mean=float(a.mean()), p50=p50, p90=p90, p99=p99)


class Latency(BaseModel):
    model_config = ConfigDict(frozen=True)

    ttft_s: Stats
    tpot_s: Stats
    e2e_s: Stats


def latency_of(records: Sequence[RequestRecord]) -> Latency:
    """Over successful requests only, as :func:`summarize` counts them."""
    ok = [r for r in records if r.error is None and r.ttft_s is not None]
    return Latency(
        ttft_s=Stats.of([r.ttft_s for r in ok if r.ttft_s is not None]),
        tpot_s=Stats.of([r.tpot_s for r in ok if r.tpot_s is not None]),
        e2e_s=Stats.of([r.e2e_s for r in ok if r.e2e_s is not None]),
    )


def error_counts(records: Sequence[RequestRecord]) -> dict[str, int]:
    return dict(Counter(r.error for r in records if r.error is not None).most_common())


@dataclass(frozen=True)
class BenchRun:
    """One benchmark run, complete (what the JSON file holds)."""

    label: str
    meta: dict[str, Any]
    records: list[BenchRecord]
    summary: Summary
    latency: Latency
    errors: dict[str, int]
    send_lag: LagStats
    client: dict[str, float]
    #: the gateway's own time (ms, wall) over the answers that carried it; None when none did
    gateway_wall_ms: Stats | None = None

    @property
    def request_records(self) -> list[RequestRecord]:
        return [b.record for b in self.records]

    @property
    def short_outputs(self) -> int:
        """Successful requests whose output length differs from the one asked for."""
        return sum(
            1 for b in self.records if b.record.error is None and b.record.output_tokens != b.requested_output_tokens
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            **self.meta,
            "runs": [{"policy": self.label, "seed": 0, "summary": self.summary.model_dump()}],
            "summary": self.summary.model_dump(),
            "latency": self.latency.model_dump(),
            "errors": self.errors,
            "short_outputs": self.short_outputs,
            "send_lag_wall": asdict(self.send_lag),
            "client": self.client,
            "gateway_wall_ms": None if self.gateway_wall_ms is None else self.gateway_wall_ms.model_dump(),
            "records": [b.to_json() for b in self.records],
        }


def build_run(
    label: str,
    meta: dict[str, Any],
    results: Sequence[SendResult],
    stats: RunStats,
    scale: TimeScale,
    t0_s: float,
    lag_warn_wall_s: float,
) -> BenchRun:
    records = to_records(results, scale, t0_s)
    plain = [b.record for b in records]
    loop_lag = np.asarray(stats.loop_lag_s or [0.0])
    client = {
        "wall_s": stats.wall_s,
        "cpu_cores": stats.client_cpu_s / stats.wall_s if stats.wall_s > 0 else 0.0,
        "peak_in_flight": float(stats.peak_in_flight),
        "max_connections": float(stats.max_connections),
        "loop_lag_p99_wall_s": float(np.percentile(loop_lag, 99)),
        "loop_lag_max_wall_s": float(loop_lag.max()),
    }
    return BenchRun(
        label=label,
        meta=meta,
        records=records,
        summary=summarize(label, plain),
        latency=latency_of(plain),
        errors=error_counts(plain),
        send_lag=LagStats.of([r.lag_wall_s for r in results], lag_warn_wall_s),
        client=client,
        gateway_wall_ms=gateway_time_of(records),
    )


def gateway_time_of(records: Sequence[BenchRecord]) -> Stats | None:
    """Stats of the gateway's own time over the records that carry it (None when none does:
    a peer router, an instance, a gateway before the header)."""
    own = [b.gateway_wall_ms for b in records if b.gateway_wall_ms is not None]
    return Stats.of(own) if own else None


def write_json(path: Path, run: BenchRun) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run.to_json(), indent=2, allow_nan=True) + "\n", encoding="utf-8")


class ResultFileError(ValueError):
    """A file that is not a ``lodestar bench --json`` result."""


def read_json(path: Path) -> BenchRun:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ResultFileError(f"{path}: cannot read ({err.strerror or err})") from None
    except json.JSONDecodeError as err:
        raise ResultFileError(f"{path}: not JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ResultFileError(f"{path}: not a `lodestar bench --json` result (format {FORMAT!r} expected)")
    try:
        run = data["runs"][0]
        records = [BenchRecord.from_json(row) for row in data["records"]]
        lag = data["send_lag_wall"]
        meta = {k: v for k, v in data.items() if k not in _NON_META}
        return BenchRun(
            label=str(run["policy"]),
            meta=meta,
            records=records,
            summary=Summary.model_validate(run["summary"]),
            latency=Latency.model_validate(data["latency"]),
            errors={str(k): int(v) for k, v in data["errors"].items()},
            send_lag=LagStats(**lag),
            client={str(k): float(v) for k, v in data["client"].items()},
            gateway_wall_ms=None
            if data.get("gateway_wall_ms") is None
            else Stats.model_validate(data["gateway_wall_ms"]),
        )
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise ResultFileError(f"{path}: malformed bench result ({type(err).__name__}: {err})") from None


_NON_META = {
    "format", "runs", "summary", "latency", "errors", "short_outputs", "send_lag_wall", "client", "gateway_wall_ms",
    "records",
}  # fmt: skip
