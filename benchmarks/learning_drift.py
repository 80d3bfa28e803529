"""How fast the learned policy learns, and how fast it recovers from drift (issue 6).

Three scenarios on ``hetero-mix8`` in the simulator, each from a cold start and with the live
trainer's cadence (5 s) and publish delay (1 s):

1. learning: a steady workload; the time until Lodestar's rolling mean TTFT stays within 10 %
   of its own steady state (the mean over the second half of the run);
2. slowdown: one H100 becomes 2× slower at ``--at``; the time from then until the rolling mean
   stays within 10 % of the new steady state (the mean over the last third);
3. mix shift: the prompt mix switches from Azure conversation to Azure code at ``--at``; same
   measure.

The rolling mean uses a 30 s window stepped every 5 s, so recovery times are resolved to about
5 s but include up to one window of lag. Baselines run alongside for reference. Plots (PNG)
and JSON go to ``--out``.

    .venv/bin/python benchmarks/learning_drift.py [--duration 900] [--at 300] [--load 0.7]
        [--seeds 3] [--out out/benchmarks/learning_drift]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lodestar.cluster.spec import load_cluster
from lodestar.sim.curves import Curve, rolling_ttft, settle_time_s
from lodestar.sim.run import LoadPlan, apply_load, run_one
from lodestar.workload.build import build_workload
from lodestar.workload.drift import switch_at
from lodestar.workload.faults import InstanceFault
from lodestar.workload.request import RequestSpec
from lodestar.workload.resolve import spec_for_target
from lodestar.workload.transform import time_slice

WINDOW_S, STEP_S = 30.0, 5.0


def _workload(cluster_name: str, trace: str, load: float, duration: float) -> list[RequestSpec]:
    cluster = load_cluster(cluster_name)
    requests, _ = apply_load(cluster, build_workload(spec_for_target(trace)).requests, LoadPlan(load=load))
    return time_slice(requests, 0.0, duration)


def _mix_shift(cluster_name: str, load: float, duration: float, at: float) -> list[RequestSpec]:
    before = _workload(cluster_name, "azure-conv", load, duration)
    after = [
        dataclasses.replace(r, request_id=f"after/{r.request_id}")
        for r in _workload(cluster_name, "azure-code", load, duration)
    ]
    return switch_at(before, after, at)


def _curve_json(curve: Curve) -> dict[str, list[float]]:
    return {"t_s": curve.t_s, "mean_ttft_s": curve.mean_ttft_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", default="hetero-mix8")
    parser.add_argument("--trace", default="azure-conv", help="workload of the learning and slowdown scenarios")
    parser.add_argument("--load", type=float, default=0.7)
    parser.add_argument("--duration", type=float, default=900.0)
    parser.add_argument("--at", type=float, default=300.0, help="time of the slowdown / mix shift (s)")
    parser.add_argument("--slow-instance", default="h100-sxm-0")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--baselines", default="least-request,llm-d,estimated-ttft")
    parser.add_argument("--out", type=Path, default=Path("out/benchmarks/learning_drift"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    cluster = load_cluster(args.cluster)
    steady = _workload(args.cluster, args.trace, args.load, args.duration)
    shifted = _mix_shift(args.cluster, args.load, args.duration, args.at)
    slow = [InstanceFault(at_s=args.at, instance_id=args.slow_instance, kind="slowdown", factor=2.0)]
    scenarios: list[tuple[str, list[RequestSpec], list[InstanceFault], float, float]] = [
        ("learning", steady, [], 0.0, args.duration / 2),
        ("slowdown", steady, slow, args.at, args.duration - (args.duration - args.at) / 3),
        ("mix-shift", shifted, [], args.at, args.duration - (args.duration - args.at) / 3),
    ]
    policies = ["lodestar", *args.baselines.split(",")]
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "scenarios": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"load average {os.getloadavg()[0]:.1f}; {len(steady)} requests in the steady workload")
    print(f"{'scenario':<10} {'policy':<15} {'seeds':>5} {'mean TTFT':>10} {'settle/recover (s)':>20}")
    for name, requests, faults, start_s, steady_from in scenarios:
        result: dict[str, Any] = {}
        for policy in policies:
            seeds = range(args.seeds if policy == "lodestar" else 1)
            runs = [run_one(cluster, requests, policy, seed, faults=faults) for seed in seeds]
            curves = [rolling_ttft(r.result.records, WINDOW_S, STEP_S) for r in runs]
            times = [settle_time_s(c, steady_from, 0.10, start_s) for c in curves]
            means = [r.summary.ttft_mean_s for r in runs]
            result[policy] = {
                "ttft_mean_s": means,
                "settle_s": times,
                "curves": [_curve_json(c) for c in curves],
            }
            shown = [f"{t:.0f}" if t is not None else "never" for t in times]
            print(f"{name:<10} {policy:<15} {len(runs):>5} {np.mean(means):>10.3f} {', '.join(shown):>20}")
        out["scenarios"][name] = result
        _plot(args.out / f"{name}.png", name, result, start_s)
    (args.out / "learning_drift.json").write_text(json.dumps(out, indent=2))
    print(f"wrote {args.out}/learning_drift.json and one PNG per scenario")


def _plot(path: Path, name: str, result: dict[str, Any], start_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for policy, data in result.items():
        curve = data["curves"][0]
        ax.plot(curve["t_s"], curve["mean_ttft_s"], label=policy, linewidth=2 if policy == "lodestar" else 1)
    if start_s > 0:
        ax.axvline(start_s, color="grey", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("simulated time (s)")
    ax.set_ylabel(f"mean TTFT, rolling {WINDOW_S:.0f} s (s)")
    ax.set_title(f"{name} (hetero-mix8)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
