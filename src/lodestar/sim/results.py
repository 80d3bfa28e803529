"""Per-request records and per-policy summaries of a simulation (or a live benchmark)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request's fate. Times in seconds from the start of the workload; latencies are None
    for a request that failed before producing tokens."""

    request_id: str
    instance_id: str | None
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float | None
    finish_s: float | None
    prefix_hit_tokens: int = 0
    preemptions: int = 0
    queue_s: float | None = None
    explore: bool = False
    fallback: bool = False
    error: str | None = None


class Summary(BaseModel):
    """Aggregate figures of one run (seconds, tokens)."""

    model_config = ConfigDict(frozen=True)

    policy: str
    n_requests: int
    n_errors: int
    ttft_mean_s: float
    ttft_p50_s: float
    ttft_p90_s: float
    ttft_p99_s: float
    tpot_mean_s: float
    e2e_mean_s: float
    e2e_p99_s: float
    throughput_tok_s: float
    prefix_hit_rate: float
    makespan_s: float


def summarize(policy: str, records: Sequence[RequestRecord]) -> Summary:
    ok = [r for r in records if r.error is None and r.ttft_s is not None]
    ttft = np.array([r.ttft_s for r in ok], dtype=float)
    tpot = np.array([r.tpot_s for r in ok if r.tpot_s is not None], dtype=float)
    e2e = np.array([r.e2e_s for r in ok if r.e2e_s is not None], dtype=float)
    start = min((r.arrival_s for r in records), default=0.0)
    end = max((r.finish_s for r in ok if r.finish_s is not None), default=start)
    makespan = max(end - start, 1e-9)
    out_tokens = sum(r.output_tokens for r in ok)
    prompt_tokens = sum(r.prompt_tokens for r in ok)
    hits = sum(r.prefix_hit_tokens for r in ok)

    def pct(a: np.ndarray, q: float) -> float:
        return float(np.percentile(a, q)) if a.size else float("nan")

    def mean(a: np.ndarray) -> float:
        return float(a.mean()) if a.size else float("nan")

    return Summary(
        policy=policy,
        n_requests=len(records),
        n_errors=len(records) - len(ok),
        ttft_mean_s=mean(ttft),
        ttft_p50_s=pct(ttft, 50),
        ttft_p90_s=pct(ttft, 90),
        ttft_p99_s=pct(ttft, 99),
        tpot_mean_s=mean(tpot),
        e2e_mean_s=mean(e2e),
        e2e_p99_s=pct(e2e, 99),
        throughput_tok_s=out_tokens / makespan,
        prefix_hit_rate=hits / prompt_tokens if prompt_tokens else 0.0,
        makespan_s=makespan,
    )


def write_records_csv(path: Path, records: Sequence[RequestRecord]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in fields(RequestRecord)])
        writer.writeheader()
        for r in records:
            writer.writerow(asdict(r))
