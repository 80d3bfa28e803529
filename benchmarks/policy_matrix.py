"""The learned policy against every baseline in the simulator (issue 6 must-show): clusters ×
traces × loads, several seeds, mean ± std, and Lodestar's ratio to the best *published*
baseline (sglang-cache-aware, llm-d, dynamo-kv, least-request, power-of-two, least-kv) on mean
and P99 TTFT. ``estimated-ttft`` (which is told the hardware) is shown as a reference.

    .venv/bin/python benchmarks/policy_matrix.py [--clusters hetero-mix8,homo-h100x8]
        [--traces mooncake-conversation,azure-conv] [--loads 0.6,0.85] [--seeds 3]
        [--duration SECONDS] [--jobs 2] [--json out/benchmarks/policy_matrix.json]
        [--reuse EARLIER.json [--reuse-policies a,b]]

``--reuse`` takes the rows of the named policies (default: every baseline) from an earlier
run's JSON with the same slice instead of simulating them again — for when only the learned
policy changed. Every run starts cold (the learned policy's fallback decides until its first model is
confident), with the live trainer's cadence (5 s) and publish delay (1 s). Prints one table per
configuration and a summary of ratios; writes JSON (and markdown next to it).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

PUBLISHED = ("sglang-cache-aware", "llm-d", "dynamo-kv", "least-request", "power-of-two", "least-kv")
REFERENCE = ("estimated-ttft",)
LEARNED = "lodestar"
TABLE_HEAD = "| policy | seeds | TTFT mean (s) | TTFT p50 (s) | TTFT p99 (s) | TPOT (ms) | prefix hit |"
METRICS = ("ttft_mean_s", "ttft_p50_s", "ttft_p99_s", "tpot_mean_s", "e2e_mean_s", "prefix_hit_rate", "n_errors")


def _run(job: tuple[str, str, float, float | None, str, int]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from lodestar.cluster.spec import load_cluster
    from lodestar.sim.run import LoadPlan, apply_load, run_one
    from lodestar.workload.build import build_workload
    from lodestar.workload.resolve import spec_for_target
    from lodestar.workload.transform import time_slice

    cluster_name, trace, load, duration, policy, seed = job
    cluster = load_cluster(cluster_name)
    requests, capacity = apply_load(cluster, build_workload(spec_for_target(trace)).requests, LoadPlan(load=load))
    if duration is not None:
        requests = time_slice(requests, 0.0, duration)
    started = time.perf_counter()
    run = run_one(cluster, requests, policy, seed)
    out = {k: getattr(run.summary, k) for k in METRICS}
    return {
        "cluster": cluster_name,
        "trace": trace,
        "load": load,
        "policy": policy,
        "seed": seed,
        "n_requests": run.summary.n_requests,
        "capacity_rps": capacity,
        "wall_s": time.perf_counter() - started,
        "models_published": len(run.published),
        **out,
    }


def _reusable(path: Path, policies: set[str]) -> dict[tuple[str, str, float, float | None, str, int], dict[str, Any]]:
    """Rows of an earlier run (its JSON) for ``policies``, by job; the slice must match."""
    data = json.loads(path.read_text())
    duration = data["meta"]["args"].get("duration")
    out = {}
    for r in data["runs"]:
        if r["policy"] in policies:
            out[(r["cluster"], r["trace"], float(r["load"]), duration, r["policy"], int(r["seed"]))] = r
    return out


def _agg(rows: list[dict[str, Any]], key: str) -> tuple[float, float]:
    vals = np.array([r[key] for r in rows], dtype=float)
    return float(vals.mean()), float(vals.std())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clusters", default="hetero-mix8,homo-h100x8")
    parser.add_argument("--traces", default="mooncake-conversation,azure-conv")
    parser.add_argument("--loads", default="0.6,0.85")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=None, help="simulate only the first DURATION s")
    parser.add_argument("--policies", default=",".join((*PUBLISHED, *REFERENCE, LEARNED)))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--json", type=Path, default=Path("out/benchmarks/policy_matrix.json"))
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="take rows of --reuse-policies from this earlier JSON instead of rerunning",
    )
    parser.add_argument("--reuse-policies", default=",".join((*PUBLISHED, *REFERENCE)))
    args = parser.parse_args()
    policies = args.policies.split(",")
    deterministic = {"least-request", "least-kv", "sglang-cache-aware", "dynamo-kv", "estimated-ttft"}
    jobs = [
        (c, t, float(ld), args.duration, p, s)
        for c in args.clusters.split(",")
        for t in args.traces.split(",")
        for ld in args.loads.split(",")
        for p in policies
        for s in range(1 if p in deterministic else args.seeds)
    ]
    started = time.time()
    reused = _reusable(args.reuse, set(args.reuse_policies.split(","))) if args.reuse else {}
    results: list[dict[str, Any]] = [reused[j] for j in jobs if j in reused]
    jobs = [j for j in jobs if j not in reused]
    if reused:
        print(f"{len(results)} rows reused from {args.reuse}")
    print(f"{len(jobs)} simulations, {args.jobs} at a time; load average {os.getloadavg()[0]:.1f}")
    partial = args.json.with_suffix(".partial.jsonl")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text("")
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for row in pool.map(_run, jobs):  # in job order; each row kept as it lands
            results.append(row)
            with partial.open("a") as f:
                f.write(json.dumps(row) + "\n")
    lines: list[str] = []
    summary: list[dict[str, Any]] = []
    for cluster in args.clusters.split(","):
        for trace in args.traces.split(","):
            for load in (float(x) for x in args.loads.split(",")):
                rows = [r for r in results if (r["cluster"], r["trace"], r["load"]) == (cluster, trace, load)]
                if not rows:
                    continue
                n = rows[0]["n_requests"]
                head = f"### {trace} on {cluster} at load {load} ({n} requests)"
                lines += [head, "", TABLE_HEAD, "|---|---|---|---|---|---|---|"]
                means: dict[str, tuple[float, float]] = {}
                p99s: dict[str, tuple[float, float]] = {}
                for p in policies:
                    pr = [r for r in rows if r["policy"] == p]
                    if not pr:
                        continue
                    means[p], p99s[p] = _agg(pr, "ttft_mean_s"), _agg(pr, "ttft_p99_s")
                    p50, tpot, hit = _agg(pr, "ttft_p50_s"), _agg(pr, "tpot_mean_s"), _agg(pr, "prefix_hit_rate")
                    lines.append(
                        f"| {p} | {len(pr)} | {means[p][0]:.3f} ± {means[p][1]:.3f} | {p50[0]:.3f} | "
                        f"{p99s[p][0]:.2f} ± {p99s[p][1]:.2f} | {tpot[0] * 1e3:.1f} | {hit[0]:.3f} |"
                    )
                published = [p for p in PUBLISHED if p in means]
                if LEARNED in means and published:
                    best_mean = min(published, key=lambda p: means[p][0])
                    best_p99 = min(published, key=lambda p: p99s[p][0])
                    r_mean = means[best_mean][0] / means[LEARNED][0]
                    r_p99 = p99s[best_p99][0] / p99s[LEARNED][0]
                    lines += ["", f"Best published: mean {best_mean} ({means[best_mean][0]:.3f} s), "
                              f"P99 {best_p99} ({p99s[best_p99][0]:.2f} s). Lodestar is {r_mean:.2f}× lower on mean, "
                              f"{r_p99:.2f}× on P99 (ratio best/Lodestar).", ""]  # fmt: skip
                    summary.append(
                        {
                            "cluster": cluster,
                            "trace": trace,
                            "load": load,
                            "best_mean_policy": best_mean,
                            "best_p99_policy": best_p99,
                            "ratio_mean": r_mean,
                            "ratio_p99": r_p99,
                        }
                    )
                else:
                    lines.append("")
    text = "\n".join(lines)
    print(text)
    print("Ratios (best published baseline / Lodestar; > 1 means Lodestar is better):")
    for s in summary:
        where = f"{s['cluster']:<12} {s['trace']:<22} load {s['load']}"
        print(f"  {where}: mean {s['ratio_mean']:.2f}×  P99 {s['ratio_p99']:.2f}×")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    meta = {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "wall_s": time.time() - started,
            "load_average_end": os.getloadavg()[0]}  # fmt: skip
    args.json.write_text(json.dumps({"meta": meta, "runs": results, "summary": summary}, indent=2))
    args.json.with_suffix(".md").write_text(text + "\n")
    print(f"wrote {args.json} and {args.json.with_suffix('.md')}")


if __name__ == "__main__":
    main()
