"""The emulator against the simulator: one trace slice, one cluster, one deterministic policy.

    .venv/bin/python benchmarks/emulator_vs_sim.py [--cluster benchmarks/clusters/duo-l40s.yaml]
        [--trace azure-conv] [--load 0.7] [--duration 120] [--time-scale 8]

1. The rate: ``--load`` × the fleet's measured capacity on the trace (what ``lodestar sim
   --load`` computes), given to both sides as ``--rate`` so they replay the same requests.
2. ``lodestar sim --policy round-robin --rate R --duration D`` (virtual time).
3. ``lodestar emulate --cluster C --time-scale S`` (real time, S× slower so this machine keeps
   up), driven by ``lodestar bench run --rate R --duration D --time-scale S`` with the instances'
   base URLs in sorted instance-id order: bench takes them round-robin in arrival order, which
   is exactly the simulator's round-robin over its sorted candidates (the script checks that
   every instance got the same number of requests).
4. TTFT P50 and P99 must agree within ±10 % (exit status 1 otherwise); mean/P90 TTFT, TPOT and
   E2E are shown for information. The emulator's client-side TTFT includes real HTTP time
   (request parsing, tokenisation, the loopback, the client) on top of the engine's; its size
   is estimated as the client-side mean TTFT minus the emulator's own (``/metrics``, engine
   time) and reported, scaled to workload time (÷ S).

Writes ``out/benchmarks/emulator_vs_sim.json`` and TTFT plots of both runs side by side.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import httpx
import numpy as np
import typer
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import REPO, Row, emulator, load_average, lodestar_argv, print_rows, run

from lodestar.bench.plots import write_plots
from lodestar.cluster.spec import load_cluster
from lodestar.sim.results import RequestRecord
from lodestar.sim.run import LoadPlan, apply_load
from lodestar.workload.build import build_workload
from lodestar.workload.resolve import spec_for_target

_METRICS = (
    "vllm:time_to_first_token_seconds_sum",
    "vllm:time_to_first_token_seconds_count",
    "lodestar_emulator_late_steps_total",
)


def scrape(urls: list[str]) -> dict[str, float]:
    """Totals over instances of the few emulator series the report uses."""
    out = dict.fromkeys(_METRICS, 0.0)
    for url in urls:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name in out:
                    out[s.name] += s.value
    return out


def read_sim_records(path: Path) -> list[RequestRecord]:
    def opt(v: str) -> float | None:
        return float(v) if v not in ("", "None") else None

    out = []
    with path.open() as fh:
        for row in csv.DictReader(fh):
            out.append(
                RequestRecord(
                    request_id=row["request_id"],
                    instance_id=row["instance_id"] or None,
                    arrival_s=float(row["arrival_s"]),
                    prompt_tokens=int(row["prompt_tokens"]),
                    output_tokens=int(row["output_tokens"]),
                    ttft_s=opt(row["ttft_s"]),
                    tpot_s=opt(row["tpot_s"]),
                    e2e_s=opt(row["e2e_s"]),
                    finish_s=opt(row["finish_s"]),
                    error=row["error"] or None,
                )
            )
    return out


def main(
    cluster: Annotated[str, typer.Option(help="cluster preset or YAML file")] = str(
        REPO / "benchmarks" / "clusters" / "duo-l40s.yaml"
    ),
    trace: Annotated[str, typer.Option(help="workload target (trace name, file or spec)")] = "azure-conv",
    load: Annotated[float, typer.Option(help="rate as a fraction of the fleet's measured capacity")] = 0.7,
    duration: Annotated[float, typer.Option(help="workload seconds of the (rescaled) trace to replay")] = 120.0,
    time_scale: Annotated[float, typer.Option(help="emulator and bench --time-scale")] = 8.0,
    policy: Annotated[str, typer.Option(help="simulator policy (bench spreads round-robin)")] = "round-robin",
    tolerance: Annotated[float, typer.Option(help="allowed relative difference of TTFT P50/P99")] = 0.10,
    out_dir: Annotated[Path, typer.Option(help="where results go")] = REPO / "out" / "benchmarks",
) -> None:
    """Replay one slice through the simulator and through the emulator; compare TTFT."""
    spec = load_cluster(cluster)
    instances = sorted(i.instance_id for i in spec.instances())
    order = [i.instance_id for i in spec.instances()]
    workload = build_workload(spec_for_target(trace))
    _, capacity = apply_load(spec, workload.requests, LoadPlan(load=load))
    assert capacity is not None
    rate = load * capacity
    print(f"{spec.name}: capacity {capacity:.3f} req/s on {workload.name}; load {load} → --rate {rate:.4f}")
    out_dir.mkdir(parents=True, exist_ok=True)
    sim_json, emu_json = out_dir / "evs-sim.json", out_dir / "evs-emulator.json"
    sim_records_dir = out_dir / "evs-sim-records"
    load_before = load_average()
    commands: dict[str, list[str]] = {}
    window = ["--rate", f"{rate:.6f}", "--duration", f"{duration:g}"]

    commands["sim"] = [
        *lodestar_argv(),
        "sim",
        "--cluster",
        cluster,
        "--trace",
        trace,
        "--policy",
        policy,
        *window,
        "--json",
        str(sim_json),
        "--records",
        str(sim_records_dir),
    ]
    run(commands["sim"])

    emu_args = ["--cluster", cluster, "--time-scale", f"{time_scale:g}"]
    with emulator(emu_args, len(order), "evs-emulator") as urls:
        url_of = dict(zip(order, urls, strict=True))
        sorted_urls = [url_of[i] for i in instances]
        before = scrape(urls)
        commands["emulator"] = [*lodestar_argv(), "emulate", *emu_args, "--port", urls[0].rsplit(":", 1)[1]]
        commands["bench"] = [
            *lodestar_argv(),
            "bench",
            "run",
            trace,
            *[a for u in sorted_urls for a in ("--url", u)],
            *window,
            "--time-scale",
            f"{time_scale:g}",
            "--label",
            "emulator",
            "--json",
            str(emu_json),
            "--no-progress",
        ]
        run(commands["bench"])
        after = scrape(urls)
    load_after = load_average()

    sim_data = json.loads(sim_json.read_text())
    sim_run = sim_data["runs"][0]
    s_sim = sim_run["summary"]
    emu = json.loads(emu_json.read_text())
    s_emu, lat = emu["runs"][0]["summary"], emu["latency"]
    sim_records = read_sim_records(sim_records_dir / f"{Path(policy).stem}-seed0.csv")
    emu_records = [RequestRecord(**{k: r[k] for k in RequestRecord.__dataclass_fields__}) for r in emu["records"]]
    sim_by_id = {r.request_id: r for r in sim_records}
    paired: list[float] = []  # the same request's TTFT, emulator minus simulator, in wall seconds
    for r in emu_records:
        twin = sim_by_id.get(r.request_id)
        if r.error is None and r.ttft_s is not None and twin is not None and twin.ttft_s is not None:
            paired.append((r.ttft_s - twin.ttft_s) * time_scale)
    paired_wall = np.percentile(paired, [10, 50, 90]).tolist() if paired else [math.nan] * 3
    sim_ok = [r for r in sim_records if r.error is None and r.tpot_s is not None]
    sim_tpot_mean = sum(r.tpot_s for r in sim_ok if r.tpot_s is not None) / max(len(sim_ok), 1)

    rows = [
        Row("TTFT P50", s_sim["ttft_p50_s"], lat["ttft_s"]["p50"], tolerance=tolerance),
        Row("TTFT P99", s_sim["ttft_p99_s"], lat["ttft_s"]["p99"], tolerance=tolerance),
        Row("TTFT mean", s_sim["ttft_mean_s"], lat["ttft_s"]["mean"]),
        Row("TTFT P90", s_sim["ttft_p90_s"], lat["ttft_s"]["p90"]),
        Row("TPOT mean", sim_tpot_mean, lat["tpot_s"]["mean"]),
        Row("E2E mean", s_sim["e2e_mean_s"], lat["e2e_s"]["mean"], unit_scale=1.0, unit="s"),
        Row("E2E P99", s_sim["e2e_p99_s"], lat["e2e_s"]["p99"], unit_scale=1.0, unit="s"),
    ]
    n_ttft = after["vllm:time_to_first_token_seconds_count"] - before["vllm:time_to_first_token_seconds_count"]
    server_ttft = (
        (after["vllm:time_to_first_token_seconds_sum"] - before["vllm:time_to_first_token_seconds_sum"]) / n_ttft
        if n_ttft
        else float("nan")
    )
    http_overhead = lat["ttft_s"]["mean"] - server_ttft
    headers = [r["headers_s"] for r in emu["records"] if r.get("headers_s") is not None]
    request_side = float(np.mean(headers)) if headers else math.nan  # send → admitted (response headers)
    late_steps = after["lodestar_emulator_late_steps_total"] - before["lodestar_emulator_late_steps_total"]
    url_to_id = {u: i for i, u in url_of.items()}
    emu_routed = Counter(url_to_id.get(r.instance_id or "", "?") for r in emu_records)
    routing_same = dict(emu_routed) == {k: v for k, v in sim_run["routed"].items() if v}

    title = (
        f"simulator vs emulator · {spec.name} · {workload.name} · {policy} · {rate:.3f} req/s "
        f"(load {load}) · {duration:g} s · time scale {time_scale:g}"
    )
    print_rows(title, "lodestar sim", "emulator + bench", rows)
    print(
        f"requests: sim {s_sim['n_requests']} ({s_sim['n_errors']} failed), emulator {s_emu['n_requests']} "
        f"({s_emu['n_errors']} failed); per instance sim {sim_run['routed']}, emulator {dict(emu_routed)} "
        f"({'same' if routing_same else 'DIFFERENT'})"
    )
    print(
        f"emulator's own TTFT mean (engine time, /metrics) {server_ttft * 1e3:.1f} ms vs client-side "
        f"{lat['ttft_s']['mean'] * 1e3:.1f} ms: HTTP + client time ≈ {http_overhead * 1e3:.1f} ms of workload time "
        f"(≈ {http_overhead * time_scale * 1e3:.1f} ms wall, of which send → response headers "
        f"{request_side * time_scale * 1e3:.1f} ms wall); late engine steps: {late_steps:.0f}; "
        f"bench send lag p99 {emu['send_lag_wall']['p99_s'] * 1e3:.1f} ms wall"
    )
    print(
        "per request, emulator TTFT − simulator TTFT (wall ms): P10 {:.1f}, P50 {:.1f}, P90 {:.1f}".format(
            *(x * 1e3 for x in paired_wall)
        )
    )
    print(f"load average (1/5/15 min) before {load_before}, after {load_after}")
    plots = write_plots(out_dir / "evs-plots", [("lodestar sim", sim_records), ("emulator", emu_records)], title)
    for p in plots:
        print(f"wrote {p}")

    passed = all(r.passed for r in rows if r.tolerance is not None) and routing_same and s_emu["n_errors"] == 0
    result: dict[str, Any] = {
        "benchmark": "emulator_vs_sim",
        "passed": passed,
        "config": {
            "cluster": spec.name,
            "cluster_arg": cluster,
            "trace": trace,
            "policy": policy,
            "load": load,
            "capacity_rps": capacity,
            "rate_rps": rate,
            "duration_s": duration,
            "time_scale": time_scale,
            "tolerance": tolerance,
        },
        "rows": [r.to_json() for r in rows],
        "sim_summary": s_sim,
        "emulator_summary": s_emu,
        "emulator_latency": lat,
        "routed": {"sim": sim_run["routed"], "emulator": dict(emu_routed), "same": routing_same},
        "emulator_server_ttft_mean_s": server_ttft,
        "http_overhead_ttft_s": http_overhead,
        "request_to_headers_mean_s": request_side,
        "paired_ttft_diff_wall_s_p10_p50_p90": paired_wall,
        "emulator_late_steps": late_steps,
        "bench_send_lag_wall": emu["send_lag_wall"],
        "bench_client": emu["client"],
        "commands": commands,
        "machine": {"load_before": load_before, "load_after": load_after, "cpus": os.cpu_count()},
    }
    path = out_dir / "emulator_vs_sim.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    print("PASS" if passed else "FAIL")
    if not passed:
        raise typer.Exit(1)


if __name__ == "__main__":
    typer.run(main)
