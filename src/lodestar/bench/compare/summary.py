"""One fleet's results: a row per router, the target ratios, the table and the JSON.

A row is *valid* when the run finished, its emulator kept real time (at most
``max_late_step_frac`` of its engine steps later than 50 ms wall) and the load generator sent on
time (P90 send lag at most ``max_send_lag_ms`` of workload time: a trace that opens with a
burst of simultaneous arrivals sends a few requests late in every run alike, which is no
reason to reject a run; a client that cannot keep up is late throughout). The ratios compare Lodestar (cold and
warmed) with the best *valid* peer row, separately for mean and P99 TTFT: ``best peer ÷
Lodestar`` (> 1: Lodestar lower). Targets (issue 10): on a heterogeneous fleet both ≥ 1.4; on
a homogeneous one Lodestar no more than 3 % worse (``Lodestar ÷ best peer`` ≤ 1.03).

TTFT statistics of the bench cover the requests that produced a token; a request the client
abandoned at the TTFT cap (a ``timeout``) drops out of them, which flatters a router that lets
requests time out. :func:`capped_ttft` counts every timeout at the cap instead (a lower bound
of its real TTFT): the tables show both, the targets are judged on the bench's figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from lodestar.bench.results import BenchRun

from .emulator import FleetHealth
from .plan import RouterCase, RunPlan

HETERO_TARGET = 1.4
HOMO_TOLERANCE = 0.03


@dataclass
class CaseResult:
    case: RouterCase
    run: BenchRun | None = None
    health: FleetHealth | None = None
    failure: str | None = None
    load_before: tuple[float, float, float] | None = None
    load_after: tuple[float, float, float] | None = None
    wall_s: float = 0.0
    bench_json: str | None = None
    argv: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def invalid_reasons(self, plan: RunPlan) -> list[str]:
        if self.failure is not None:
            return [self.failure]
        out: list[str] = []
        if self.run is None:
            return ["no result"]
        if self.health is not None and self.health.late_frac > plan.max_late_step_frac:
            out.append(
                f"emulator fell behind: {self.health.late_frac * 100:.1f} % of engine steps late "
                f"(> {plan.max_late_step_frac * 100:g} %; P99 step lag ≤ "
                f"{self.health.step_lag_p99_wall_s * 1e3:g} ms wall)"
            )
        lag_ms = send_lag_p90_s(self.run) * 1e3
        if lag_ms > plan.max_send_lag_ms:
            out.append(f"load generator late: send lag P90 {lag_ms:.0f} ms (workload; > {plan.max_send_lag_ms:g})")
        ok = self.run.summary.n_requests - self.run.summary.n_errors
        if ok == 0:
            out.append("every request failed")
        return out

    def valid(self, plan: RunPlan) -> bool:
        return not self.invalid_reasons(plan)

    def capped(self, plan: RunPlan) -> dict[str, float]:
        """TTFT mean and P99 with every timeout counted at the cap (:func:`capped_ttft`)."""
        mean, p99 = capped_ttft(self.run, plan.ttft_cap_s) if self.run is not None else (math.nan, math.nan)
        return {"ttft_mean_s": mean, "ttft_p99_s": p99, "cap_s": plan.ttft_cap_s}

    def metrics(self) -> dict[str, float]:
        """Headline figures in workload seconds (NaN when absent)."""
        nan = math.nan
        if self.run is None:
            return {
                k: nan
                for k in ("ttft_mean_s", "ttft_p50_s", "ttft_p99_s", "tpot_mean_s", "tok_s", "req_s", "errors", "n")
            }
        s, lat = self.run.summary, self.run.latency
        ok = s.n_requests - s.n_errors
        return {
            "ttft_mean_s": lat.ttft_s.mean,
            "ttft_p50_s": lat.ttft_s.p50,
            "ttft_p99_s": lat.ttft_s.p99,
            "tpot_mean_s": lat.tpot_s.mean,
            "tok_s": s.throughput_tok_s,
            "req_s": ok / s.makespan_s if s.makespan_s > 0 else nan,
            "errors": float(s.n_errors),
            "n": float(s.n_requests),
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> CaseResult:
        """Back from :meth:`to_json` (the bench run re-read from its own file)."""
        from lodestar.bench.results import read_json

        from .plan import parse_case

        emulator = row.get("emulator")
        health = None
        if emulator:
            health = FleetHealth(**{k: v for k, v in emulator.items() if k in FleetHealth.__dataclass_fields__})
        bench_json = row.get("bench_json")
        failure = row["invalid_reasons"][0] if row.get("invalid_reasons") and not bench_json else None
        known = {*_JSON_KEYS}
        return cls(
            case=parse_case(row["router"]),
            run=read_json(Path(bench_json)) if bench_json else None,
            health=health,
            failure=failure,
            load_before=tuple(row["load_average_before"]) if row.get("load_average_before") else None,
            load_after=tuple(row["load_average_after"]) if row.get("load_average_after") else None,
            wall_s=float(row.get("wall_s", 0.0)),
            bench_json=bench_json,
            argv=list(row.get("argv", [])),
            extra={k: v for k, v in row.items() if k not in known},
        )

    def to_json(self, plan: RunPlan) -> dict[str, Any]:
        return {
            "router": self.case.key,
            "label": self.case.label,
            "note": self.case.note,
            "valid": self.valid(plan),
            "invalid_reasons": self.invalid_reasons(plan),
            "metrics": self.metrics(),
            "ttft_timeouts_at_cap": self.capped(plan),
            "errors_by_class": self.run.errors if self.run else {},
            "emulator": self.health.to_json() if self.health else None,
            "send_lag_wall": None
            if self.run is None
            else {"p50_s": self.run.send_lag.p50_s, "p99_s": self.run.send_lag.p99_s, "max_s": self.run.send_lag.max_s},
            "send_lag_p90_s": None if self.run is None else send_lag_p90_s(self.run),
            "client": self.run.client if self.run else None,
            "load_average_before": self.load_before,
            "load_average_after": self.load_after,
            "wall_s": self.wall_s,
            "bench_json": self.bench_json,
            "argv": self.argv,
            **self.extra,
        }


def capped_ttft(run: BenchRun, cap_s: float) -> tuple[float, float]:
    """(mean, P99) TTFT in workload seconds over the requests that produced a token *and*
    those abandoned at the cap (``timeout``, counted as ``cap_s``); other failures (a 4xx, a
    refused connection) have no time to count and stay out. NaN when nothing is left."""
    values = [b.record.ttft_s for b in run.records if b.record.ttft_s is not None]
    values += [cap_s for b in run.records if b.record.ttft_s is None and b.record.error == "timeout"]
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.percentile(values, 99))


def send_lag_p90_s(run: BenchRun) -> float:
    """P90 of how late requests left the client (workload seconds)."""
    lags = [b.send_lag_s for b in run.records]
    return float(np.percentile(lags, 90)) if lags else 0.0


_JSON_KEYS = (
    "router", "label", "note", "valid", "invalid_reasons", "metrics", "ttft_timeouts_at_cap", "errors_by_class",
    "emulator", "send_lag_wall", "send_lag_p90_s", "client", "load_average_before", "load_average_after", "wall_s",
    "bench_json", "argv",
)  # fmt: skip


@dataclass(frozen=True)
class Ratio:
    """``best peer ÷ Lodestar`` for one figure (> 1: Lodestar is lower)."""

    lodestar: str
    metric: str
    lodestar_s: float
    best_peer: str
    best_peer_s: float

    @property
    def improvement(self) -> float:
        return self.best_peer_s / self.lodestar_s if self.lodestar_s > 0 else math.nan

    @property
    def relative_worse(self) -> float:
        """``Lodestar ÷ best peer − 1`` (≤ 0.03 meets the homogeneous target)."""
        return self.lodestar_s / self.best_peer_s - 1.0 if self.best_peer_s > 0 else math.nan

    def met(self, heterogeneous: bool) -> bool:
        if heterogeneous:
            return self.improvement >= HETERO_TARGET
        return self.relative_worse <= HOMO_TOLERANCE

    def to_json(self, heterogeneous: bool) -> dict[str, Any]:
        return {
            "lodestar": self.lodestar,
            "metric": self.metric,
            "lodestar_s": self.lodestar_s,
            "best_peer": self.best_peer,
            "best_peer_s": self.best_peer_s,
            "best_peer_over_lodestar": self.improvement,
            "lodestar_over_best_peer_minus_1": self.relative_worse,
            "target": f">= {HETERO_TARGET}x lower" if heterogeneous else f"<= {HOMO_TOLERANCE * 100:g} % worse",
            "met": self.met(heterogeneous),
        }


def ratios(results: Sequence[CaseResult], plan: RunPlan) -> list[Ratio]:
    """Lodestar cold and warmed against the best valid peer, on mean and P99 TTFT."""
    peers = [r for r in results if r.case.kind == "peer" and r.valid(plan)]
    out: list[Ratio] = []
    for mine in (r for r in results if r.case.is_learned and r.valid(plan)):
        for metric in ("ttft_mean_s", "ttft_p99_s"):
            values = [(p.metrics()[metric], p.case.key) for p in peers if not math.isnan(p.metrics()[metric])]
            if not values:
                continue
            best_s, best = min(values)
            out.append(Ratio(mine.case.key, metric, mine.metrics()[metric], best, best_s))
    return out


def is_heterogeneous(hardware: Sequence[str]) -> bool:
    return len(set(hardware)) > 1


def fleet_table(title: str, results: Sequence[CaseResult], plan: RunPlan) -> Table:
    caption = f"† TTFT with every timeout counted at the cap ({plan.ttft_cap_s * 1e3:,.0f} ms): a lower bound"
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    cols = (
        "router", "TTFT mean", "P50", "P99", "mean†", "P99†", "TPOT", "tok/s", "req/s", "errors", "emu late", "valid"
    )  # fmt: skip
    for col in cols:
        table.add_column(col, justify="left" if col in ("router", "valid") else "right")
    for r in results:
        m, c = r.metrics(), r.capped(plan)
        reasons = r.invalid_reasons(plan)
        table.add_row(
            r.case.label,
            _ms(m["ttft_mean_s"]),
            _ms(m["ttft_p50_s"]),
            _ms(m["ttft_p99_s"]),
            _ms(c["ttft_mean_s"]),
            _ms(c["ttft_p99_s"]),
            _ms(m["tpot_mean_s"]),
            _num(m["tok_s"]),
            _num(m["req_s"], 2),
            "—" if math.isnan(m["errors"]) else f"{m['errors']:.0f}/{m['n']:.0f}",
            "—" if r.health is None else f"{r.health.late_frac * 100:.1f} %",
            "yes" if not reasons else "NO: " + "; ".join(reasons),
        )
    return table


def markdown_table(results: Sequence[CaseResult], plan: RunPlan) -> str:
    """The same table as Markdown (for notes and the README)."""
    lines = [
        "| router | TTFT mean (ms) | P50 (ms) | P99 (ms) | mean† (ms) | P99† (ms) | TPOT (ms) | tok/s | req/s "
        "| errors | emulator late steps | valid |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        m, c = r.metrics(), r.capped(plan)
        reasons = r.invalid_reasons(plan)
        errors = "—" if math.isnan(m["errors"]) else f"{m['errors']:.0f}/{m['n']:.0f}"
        late = "—" if r.health is None else f"{r.health.late_frac * 100:.1f} %"
        cells = [
            r.case.label,
            _ms(m["ttft_mean_s"]),
            _ms(m["ttft_p50_s"]),
            _ms(m["ttft_p99_s"]),
            _ms(c["ttft_mean_s"]),
            _ms(c["ttft_p99_s"]),
            _ms(m["tpot_mean_s"]),
            _num(m["tok_s"]),
            _num(m["req_s"], 2),
            errors,
            late,
            "yes" if not reasons else "no: " + "; ".join(reasons),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\n† TTFT with every timeout counted at the cap ({plan.ttft_cap_s * 1e3:,.0f} ms): a lower bound.")
    return "\n".join(lines)


def ratio_lines(found: Sequence[Ratio], heterogeneous: bool) -> list[str]:
    out = []
    for q in found:
        name = "mean" if q.metric == "ttft_mean_s" else "P99"
        verdict = "met" if q.met(heterogeneous) else "NOT met"
        if heterogeneous:
            target = f"target ≥ {HETERO_TARGET}× lower"
            figure = f"{q.improvement:.2f}× lower"
        else:
            target = f"target ≤ {HOMO_TOLERANCE * 100:g} % worse"
            figure = f"{q.relative_worse * 100:+.1f} %"
        out.append(
            f"{q.lodestar} TTFT {name} {q.lodestar_s * 1e3:,.0f} ms vs best peer {q.best_peer} "
            f"{q.best_peer_s * 1e3:,.0f} ms: {figure} ({target}: {verdict})"
        )
    return out


def _ms(v: float) -> str:
    return "—" if math.isnan(v) else f"{v * 1e3:,.0f}"


def _num(v: float, digits: int = 0) -> str:
    return "—" if math.isnan(v) else f"{v:,.{digits}f}"
