"""``lodestar sim``: compare routing policies on a workload in the discrete-event simulator."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Annotated

import typer

from lodestar.workload.faults import InstanceFault


def parse_fault(text: str) -> InstanceFault:
    """``slowdown:<instance>:<factor>@<t_s>`` or ``restore:<instance>@<t_s>``."""
    try:
        what, at = text.rsplit("@", 1)
        parts = what.split(":")
        if parts[0] == "slowdown" and len(parts) == 3:
            return InstanceFault(at_s=float(at), instance_id=parts[1], kind="slowdown", factor=float(parts[2]))
        if parts[0] == "restore" and len(parts) == 2:
            return InstanceFault(at_s=float(at), instance_id=parts[1], kind="restore")
    except ValueError as exc:
        raise typer.BadParameter(f"--fault {text!r}: {exc}") from None
    raise typer.BadParameter(
        f"--fault {text!r}: expected slowdown:<instance>:<factor>@<t_s> or restore:<instance>@<t_s>"
    )


def sim(
    policy: Annotated[
        list[str],
        typer.Option(
            "--policy", "-p", help="profile name (see `lodestar policy list`) or YAML file; repeat or comma-separate"
        ),
    ],
    cluster: Annotated[
        str, typer.Option(help="cluster preset (hetero-mix8, homo-h100x8, ...) or YAML file")
    ] = "hetero-mix8",
    trace: Annotated[
        str,
        typer.Option(
            "--trace", "-t", help="workload: shared trace name (`lodestar workload list`), trace file or spec YAML"
        ),
    ] = "mooncake-conversation",
    load: Annotated[
        float | None, typer.Option(help="arrival rate as a fraction of the fleet's measured capacity")
    ] = None,
    rate: Annotated[float | None, typer.Option(help="arrival rate in requests/s (instead of --load)")] = None,
    duration: Annotated[
        float | None, typer.Option(help="simulate only the first DURATION seconds of the (rescaled) workload")
    ] = None,
    seeds: Annotated[int, typer.Option(min=1, help="run every policy with seeds 0..N-1 and report mean ± std")] = 1,
    scrape_interval: Annotated[float, typer.Option(min=0.001, help="staleness of scraped instance state (s)")] = 0.1,
    publish_interval: Annotated[float, typer.Option(min=0.1, help="learned policy: trainer publish cadence (s)")] = 5.0,
    publish_delay: Annotated[
        float, typer.Option(min=0.0, help="learned policy: publish → router reload delay (s)")
    ] = 1.0,
    train_steps: Annotated[int, typer.Option(min=1, help="learned policy: training steps per publish")] = 25,
    fault: Annotated[
        list[str] | None,
        typer.Option(help="slowdown:<instance>:<factor>@<t_s> or restore:<instance>@<t_s>; repeatable"),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="write summaries (per policy and seed) as JSON")
    ] = None,
    records: Annotated[Path | None, typer.Option(help="directory for per-request CSV records")] = None,
    plots: Annotated[Path | None, typer.Option(help="directory for PNG plots (TTFT over time, CDF)")] = None,
) -> None:
    """Simulate a workload on a cluster under one or more routing policies and compare them.

    Example: lodestar sim --cluster hetero-mix8 --trace mooncake-conversation --policy llm-d
    --policy lodestar --load 0.8 --json out.json
    """
    # Heavy imports (torch) here, so that `lodestar --help` and other commands start fast.
    import torch

    from lodestar.cluster.spec import ClusterFileError, load_cluster
    from lodestar.engine.profiles import UnknownProfileError
    from lodestar.learn.sim_trainer import Cadence
    from lodestar.policy.profile_spec import ProfileError
    from lodestar.policy.registry import PluginError
    from lodestar.sim.report import print_table, write_json, write_plots, write_records
    from lodestar.sim.run import LoadPlan, PolicyRun, apply_load, make_policy, run_one, workload_rate
    from lodestar.sim.simulator import SimConfig
    from lodestar.workload.build import build_workload
    from lodestar.workload.errors import WorkloadError
    from lodestar.workload.resolve import spec_for_target
    from lodestar.workload.transform import time_slice

    if load is not None and rate is not None:
        raise typer.BadParameter("give --load or --rate, not both")
    for option, value in (("--load", load), ("--rate", rate), ("--duration", duration)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise typer.BadParameter(f"must be a finite number > 0, got {value:g}", param_hint=option)
    torch.set_num_threads(1)
    profiles = [p.strip() for item in policy for p in item.split(",") if p.strip()]
    try:
        spec = load_cluster(cluster)
        workload = build_workload(spec_for_target(trace))
        for profile in profiles:  # fail fast on a bad profile, before any long run
            make_policy(profile, spec, 0)
    except (ClusterFileError, WorkloadError, ProfileError, PluginError, UnknownProfileError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    faults = list(workload.faults) + [parse_fault(f) for f in fault or []]
    known = {i.instance_id for i in spec.instances()}
    for f in faults:
        if f.instance_id not in known:
            typer.echo(f"error: fault names unknown instance {f.instance_id!r}; instances: {sorted(known)}", err=True)
            raise typer.Exit(2)
    started = time.perf_counter()
    requests, capacity = apply_load(spec, workload.requests, LoadPlan(load=load, rate_rps=rate))
    if duration is not None:
        requests = time_slice(requests, 0.0, duration)
    if not requests:
        typer.echo("error: the workload has no requests in the chosen window", err=True)
        raise typer.Exit(2)
    rps = workload_rate(requests)
    cap_text = f", fleet capacity {capacity:.2f} req/s" if capacity else ""
    typer.echo(
        f"{len(requests)} requests of {workload.name} at {rps or 0:.2f} req/s on {spec.name}{cap_text}; "
        f"{len(profiles)} policies × {seeds} seeds"
    )
    config = SimConfig(scrape_interval_s=scrape_interval)
    cadence = Cadence(publish_interval_s=publish_interval, publish_delay_s=publish_delay, steps_per_publish=train_steps)
    runs: list[PolicyRun] = []
    for profile in profiles:
        for seed in range(seeds):
            run = run_one(spec, requests, profile, seed, config, faults, cadence)
            runs.append(run)
            s = run.summary
            typer.echo(
                f"  {profile} seed {seed}: TTFT mean {s.ttft_mean_s:.3f}s p99 {s.ttft_p99_s:.3f}s "
                f"({run.result.wall_s:.1f}s wall)"
            )
    title = f"{workload.name} on {spec.name}" + (f" at load {load}" if load is not None else "")
    print_table(runs, title)
    meta = {
        "cluster": spec.name,
        "workload": workload.name,
        "load": load,
        "capacity_rps": capacity,
        "rate_rps": rps,
        "n_requests": len(requests),
        "seeds": seeds,
        "scrape_interval_s": scrape_interval,
        "faults": [dataclasses.asdict(f) for f in faults],
        "wall_s": time.perf_counter() - started,
    }
    if json_path is not None:
        write_json(json_path, runs, meta)
        typer.echo(f"wrote {json_path}")
    if records is not None:
        typer.echo(f"wrote {len(write_records(records, runs))} record files to {records}")
    if plots is not None:
        for p in write_plots(plots, runs, title):
            typer.echo(f"wrote {p}")


def register(app: typer.Typer) -> None:
    app.command("sim")(sim)
