"""The end-of-run summary: a latency table (mean, P50, P90, P99 of TTFT, TPOT, E2E),
throughput, errors by class, and the client's own health (send lag, event-loop lag, CPU) with
a warning when the client may have set the pace instead of the server."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from lodestar.bench.results import BenchRun, Stats

CLIENT_CPU_WARN = 0.85  # one event loop is one core


def latency_table(run: BenchRun, title: str) -> Table:
    table = Table(title=title)
    table.add_column("metric")
    for col in ("mean", "P50", "P90", "P99", "n"):
        table.add_column(col, justify="right")
    rows: tuple[tuple[str, Stats, float, str], ...] = (
        ("TTFT", run.latency.ttft_s, 1e3, "ms"),
        ("TPOT", run.latency.tpot_s, 1e3, "ms"),
        ("E2E", run.latency.e2e_s, 1.0, "s"),
    )
    for name, stats, scale, unit in rows:
        cells = [_fmt(v * scale) for v in (stats.mean, stats.p50, stats.p90, stats.p99)]
        table.add_row(f"{name} ({unit})", *cells, str(stats.n))
    return table


def client_warnings(run: BenchRun, lag_warn_wall_s: float) -> list[str]:
    """Reasons to distrust the figures (empty when the client kept up)."""
    out: list[str] = []
    scale = float(run.meta.get("time_scale", 1.0))
    lag = run.send_lag
    if lag.too_late(lag_warn_wall_s):
        out.append(
            f"requests left the client late: send lag p99 {lag.p99_s * 1e3:.1f} ms, max {lag.max_s * 1e3:.1f} ms "
            f"(wall; {lag.late_frac * 100:.1f} % later than {lag_warn_wall_s * 1e3:g} ms) — the client, not the "
            "schedule, set the arrival times"
        )
    loop_p99 = run.client["loop_lag_p99_wall_s"]
    if loop_p99 > lag_warn_wall_s:
        out.append(
            f"the client's event loop woke up late (p99 {loop_p99 * 1e3:.1f} ms wall): token arrival times carry "
            f"up to ~{loop_p99 / scale * 1e3:.1f} ms (workload time) of client delay"
        )
    if run.client["cpu_cores"] > CLIENT_CPU_WARN:
        out.append(
            f"the client used {run.client['cpu_cores']:.2f} CPU cores (one event loop saturates at 1): "
            "raise --time-scale or lower the rate"
        )
    if run.client["peak_in_flight"] > run.client["max_connections"]:
        out.append(
            f"{run.client['peak_in_flight']:.0f} requests were in flight on {run.client['max_connections']:.0f} "
            "connections: some waited inside the client (raise --max-connections)"
        )
    if run.short_outputs:
        out.append(f"{run.short_outputs} successful request(s) returned a different number of tokens than asked")
    return out


def print_report(run: BenchRun, lag_warn_wall_s: float, console: Console | None = None) -> None:
    con = console or Console(width=120)
    scale = float(run.meta.get("time_scale", 1.0))
    s = run.summary
    con.print(latency_table(run, f"lodestar bench · {run.meta.get('workload', '?')} · {run.label}"))
    ok = s.n_requests - s.n_errors
    req_rate = ok / s.makespan_s if s.makespan_s > 0 else 0.0
    con.print(
        f"requests: {s.n_requests} sent, {ok} ok, {s.n_errors} failed"
        + (" (" + ", ".join(f"{k}: {v}" for k, v in run.errors.items()) + ")" if run.errors else "")
    )
    con.print(f"throughput: {s.throughput_tok_s:,.1f} output tok/s, {req_rate:.2f} req/s over {s.makespan_s:.1f} s")
    lag = run.send_lag
    con.print(
        f"client: send lag p50 {lag.p50_s * 1e3:.1f} ms, p99 {lag.p99_s * 1e3:.1f} ms, max {lag.max_s * 1e3:.1f} ms "
        f"(wall); loop lag p99 {run.client['loop_lag_p99_wall_s'] * 1e3:.1f} ms; "
        f"CPU {run.client['cpu_cores']:.2f} cores; peak {run.client['peak_in_flight']:.0f} in flight"
    )
    own = run.gateway_wall_ms
    if own is not None:
        con.print(
            f"gateway's own time before the upstream request (its Server-Timing header; wall, not scaled): "
            f"P50 {own.p50:.2f} ms, P99 {own.p99:.2f} ms over {own.n} answers"
        )
    if scale != 1.0:
        con.print(
            f"time scale {scale:g}: arrivals were stretched ×{scale:g}; every latency, rate and makespan above "
            f"is in workload seconds (wall-clock measurement ÷ {scale:g})"
        )
    for text in client_warnings(run, lag_warn_wall_s):
        con.print(f"[bold yellow]warning:[/] {text}")


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "—"
    return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"
