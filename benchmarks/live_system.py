"""The live system against itself and the simulator (issue 7 and issue 8 must-shows).

For each router profile (round-robin, sglang-cache-aware, lodestar): start the whole local
stack (`lodestar up`'s processes) on an emulated fleet, time-scaled so this machine keeps up;
send the same workload through the gateway with `lodestar bench run`; stop the stack (a fresh
stack per profile: cold caches, a cold learner). Then run the same workload through
`lodestar sim` with the same profiles, and compare the rankings.

With ``--history`` (on for the lodestar run), the history service records that run; after it,
every Grafana panel's SQL is run against the recorded data (`lodestar grafana validate --dsn`),
`lodestar report` renders the charts, and `lodestar replay sim` re-runs the recorded window
under every profile — whose ranking must agree too.

    .venv/bin/python benchmarks/live_system.py [--cluster hetero-mix8] [--trace azure-conv]
        [--load 0.6] [--duration 150] [--time-scale 6] [--out out/benchmarks/live_system] [--reuse]

Live TTFT is also shown with failed requests (gateway timeouts) counted at the time they failed
(†, a lower bound); the live ranking uses it, so a router is not flattered by its timeouts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROFILES = ("round-robin", "sglang-cache-aware", "lodestar")


def lodestar(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "lodestar", *args]
    print("$ lodestar", " ".join(args), flush=True)
    done = subprocess.run(cmd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def export_workload(cluster: str, trace: str, load: float, duration: float, path: Path) -> int:
    from lodestar.cluster.spec import load_cluster
    from lodestar.sim.run import LoadPlan, apply_load
    from lodestar.workload.build import build_workload
    from lodestar.workload.resolve import spec_for_target
    from lodestar.workload.traces.lodestar_jsonl import dump_requests
    from lodestar.workload.transform import time_slice

    spec = load_cluster(cluster)
    requests, _ = apply_load(spec, build_workload(spec_for_target(trace)).requests, LoadPlan(load=load))
    requests = time_slice(requests, 0.0, duration)
    path.write_text(dump_requests(requests))
    return len(requests)


def live_run(profile: str, args: argparse.Namespace, workload: Path, out: Path, history: bool) -> dict[str, Any]:
    from lodestar.cluster.spec import load_cluster
    from lodestar.localinfra.settings import LocalInfraSettings
    from lodestar.localinfra.stack import Stack, StackConfig
    from lodestar.localinfra.stack_ports import StackPorts

    n = len(load_cluster(args.cluster).instances())
    ports = StackPorts.free(n)
    config = StackConfig(
        cluster=load_cluster(args.cluster),
        ports=ports,
        name=f"live-{profile}-{os.getpid()}",
        time_scale=args.time_scale,
        profile=profile,
        history=history,
    )
    stack = Stack(config, LocalInfraSettings(home=Path(".lodestar").resolve()))
    stack.start()
    started = datetime.now(UTC)
    try:
        result = out / f"live-{profile}.json"
        lodestar(
            "bench", "run", str(workload), "--url", str(stack.component("gateway").url),
            "--time-scale", str(args.time_scale), "--model", "llama-3-8b", "--json", str(result),
        )  # fmt: skip
        ended = datetime.now(UTC)
        time.sleep(3)  # let the last outcomes reach the topics and the history
    finally:
        stack.stop()
    data = json.loads(result.read_text())
    extra = {
        "from": (started - timedelta(seconds=5)).isoformat(),
        "to": (ended + timedelta(seconds=5)).isoformat(),
        "history_dir": str(stack.data_dir / "history") if history else None,
    }
    (out / f"live-{profile}.meta.json").write_text(json.dumps(extra))
    return {"summary": data["summary"], "capped": ttft_with_failures(data["records"]), **extra}


def ttft_with_failures(records: list[dict[str, Any]]) -> tuple[float, float]:
    """Mean and P99 TTFT with every failed request counted at the time it failed (a lower bound
    on its TTFT): a router whose requests time out is not flattered by leaving them out."""
    import numpy as np

    values = [r["ttft_s"] if not r["error"] else (r.get("headers_s") or r.get("e2e_s") or 0.0) for r in records]
    arr = np.array([v for v in values if v is not None], dtype=float)
    return float(arr.mean()), float(np.percentile(arr, 99))


def _reused(profile: str, out: Path) -> dict[str, Any] | None:
    """A finished live run of ``profile`` in ``out`` (``--reuse``)."""
    result = out / f"live-{profile}.json"
    if not result.exists():
        return None
    meta = out / f"live-{profile}.meta.json"
    extra = json.loads(meta.read_text()) if meta.exists() else {"from": None, "to": None, "history_dir": None}
    data = json.loads(result.read_text())
    return {"summary": data["summary"], "capped": ttft_with_failures(data["records"]), **extra}


def ranking(values: dict[str, float]) -> list[str]:
    return sorted(values, key=lambda p: values[p])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", default="hetero-mix8")
    parser.add_argument("--trace", default="azure-conv")
    parser.add_argument("--load", type=float, default=0.6)
    parser.add_argument("--duration", type=float, default=150.0)
    parser.add_argument("--time-scale", type=float, default=6.0)
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--out", type=Path, default=Path("out/benchmarks/live_system"))
    parser.add_argument(
        "--reuse", action="store_true", help="reuse finished live runs, sim and replay results in --out (tables only)"
    )
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    profiles = args.profiles.split(",")
    workload = out / "workload.jsonl"
    if args.reuse and workload.exists():
        n = sum(1 for line in workload.read_text().splitlines() if line.strip())
    else:
        n = export_workload(args.cluster, args.trace, args.load, args.duration, workload)
    print(f"{n} requests ({args.trace}, load {args.load} of {args.cluster}, {args.duration:.0f} s); "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    live = {
        p: (args.reuse and _reused(p, out)) or live_run(p, args, workload, out, history=(p == "lodestar"))
        for p in profiles
    }
    sim_json = out / "sim.json"
    if not (args.reuse and sim_json.exists()):
        lodestar(
            "sim",
            "--cluster",
            args.cluster,
            "--trace",
            str(workload),
            "-p",
            ",".join(profiles),
            "--json",
            str(sim_json),
        )
    sim = {r["policy"]: r["summary"] for r in json.loads(sim_json.read_text())["runs"]}
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}, "n_requests": n}
    rec = live.get("lodestar")
    replay: dict[str, Any] = {}
    if args.reuse and (out / "replay.json").exists():
        replay = {r["policy"]: r["summary"] for r in json.loads((out / "replay.json").read_text())["runs"]}
    elif rec and rec["history_dir"]:
        hist = rec["history_dir"]
        window = ["--from", rec["from"], "--to", rec["to"]]
        validate = lodestar("grafana", "validate", "--dsn", f"chdb://{hist}", *window, check=False)
        report["grafana_validate"] = {"returncode": validate.returncode, "output": validate.stdout[-4000:]}
        lodestar("report", "--chdb", hist, *window, "--out", str(out / "report"))
        replay_json = out / "replay.json"
        lodestar("replay", "sim", "--chdb", hist, *window, "--cluster", args.cluster, "-p", ",".join(profiles),
                 "--json", str(replay_json))  # fmt: skip
        replay = {r["policy"]: r["summary"] for r in json.loads(replay_json.read_text())["runs"]}
    rows = []
    head = ("profile", "live mean", "live p99", "errors", "mean†", "p99†", "sim mean", "sim p99", "replay mean",
            "replay p99")  # fmt: skip
    print("\n" + " ".join(f"{h:>11}" for h in head))
    for p in profiles:
        lv, sm, rp = live[p]["summary"], sim[p], replay.get(p)
        capped_mean, capped_p99 = live[p]["capped"]
        rows.append({"profile": p, "live": lv, "live_capped": {"ttft_mean_s": capped_mean, "ttft_p99_s": capped_p99},
                     "sim": sm, "replay": rp})  # fmt: skip
        rp_mean = f"{rp['ttft_mean_s']:.3f}" if rp else "—"
        rp_p99 = f"{rp['ttft_p99_s']:.3f}" if rp else "—"
        print(f"{p:<20} {lv['ttft_mean_s']:>9.3f} {lv['ttft_p99_s']:>9.3f} {lv['n_errors']:>11} "
              f"{capped_mean:>11.3f} {capped_p99:>11.3f} {sm['ttft_mean_s']:>11.3f} {sm['ttft_p99_s']:>11.3f} "
              f"{rp_mean:>11} {rp_p99:>11}")  # fmt: skip
    print("† failed requests (gateway timeouts) counted at the time they failed, a lower bound on their TTFT")
    ranks = {
        "live": ranking({p: live[p]["capped"][0] for p in profiles}),
        "sim": ranking({p: sim[p]["ttft_mean_s"] for p in profiles}),
    }
    if replay:
        ranks["replay"] = ranking({p: replay[p]["ttft_mean_s"] for p in profiles})
    for name, order in ranks.items():
        print(f"ranking by mean TTFT ({name}{'†' if name == 'live' else ''}): {' < '.join(order)}")
    agree = all(order == ranks["sim"] for order in ranks.values())
    print("rankings agree" if agree else "RANKINGS DIFFER")
    if "grafana_validate" in report:
        ok = report["grafana_validate"]["returncode"] == 0
        print(
            "every Grafana panel query ran and returned rows (the dead-letter panels may be empty: no dead letters)"
            if ok
            else "some panel queries failed: see JSON"
        )
    report |= {"rows": rows, "rankings": ranks, "rankings_agree": agree, "load_average_end": os.getloadavg()[0]}
    (out / "live_system.json").write_text(json.dumps(report, indent=2, default=str))
    print(f"wrote {out}/live_system.json")
    raise SystemExit(0 if agree else 1)


if __name__ == "__main__":
    main()
