"""``lodestar bench compare``: the command (heavy imports happen inside it)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from lodestar.bench.compare.plan import RouterCase, RunPlan
    from lodestar.bench.compare.summary import CaseResult

DEFAULT_FLEETS = ("hetero-mix8", "homo-h100x8")


def compare(
    fleet: Annotated[
        list[str] | None, typer.Option("--fleet", "-f", help="cluster preset or YAML; repeat (default: both)")
    ] = None,
    router: Annotated[
        list[str] | None,
        typer.Option(
            "--router",
            "-r",
            help="ROUTER:VARIANT, repeat (default: every peer policy, lodestar:cold, lodestar:warm, "
            "lodestar:estimated-ttft); see --list",
        ),
    ] = None,
    trace: Annotated[str, typer.Option(help="workload: shared trace name, trace file or spec .yaml")] = (
        "mooncake-conversation"
    ),
    load: Annotated[float, typer.Option(help="arrival rate as a fraction of the fleet's measured capacity")] = 0.8,
    duration: Annotated[float, typer.Option(help="measured window (workload seconds of the rescaled trace)")] = 60.0,
    start: Annotated[float, typer.Option(help="start of the measured window (workload s)")] = 0.0,
    warmup_start: Annotated[float, typer.Option(help="start of Lodestar's warm-up window (workload s)")] = 1800.0,
    warmup_duration: Annotated[float, typer.Option(help="length of the warm-up window (workload s)")] = 90.0,
    time_scale: Annotated[
        float, typer.Option(help="emulator and bench --time-scale (wall s per emulated s; raise on a busy machine)")
    ] = 2.0,
    ttft_cap: Annotated[
        float, typer.Option(help="a request without a first token after this many workload s is a timeout error")
    ] = 60.0,
    max_late_frac: Annotated[
        float, typer.Option(help="a run is invalid when more of the emulator's engine steps than this were late")
    ] = 0.02,
    max_send_lag_ms: Annotated[
        float,
        typer.Option(
            help="a run is invalid when the bench's P90 send lag exceeds this (workload ms = wall ÷ time scale)"
        ),
    ] = 100.0,
    lodestar_embedded: Annotated[
        bool,
        typer.Option(
            "--lodestar-embedded/--lodestar-separate",
            help="Lodestar's router inside its gateway's process, or a process of its own (as in compose)",
        ),
    ] = True,
    out: Annotated[Path, typer.Option(help="directory for JSON, logs, plots and the Markdown tables")] = Path(
        "out/bench-compare"
    ),
    check_targets: Annotated[bool, typer.Option(help="exit 1 when a target of issue 10 is missed")] = False,
    list_routers: Annotated[bool, typer.Option("--list", help="print the routers and exit")] = False,
    rebuild: Annotated[
        bool,
        typer.Option(help="run nothing: rebuild tables, ratios and plots from OUT/compare.json with these thresholds"),
    ] = False,
) -> None:
    """Live head-to-head: real peer routers and Lodestar in front of the same emulated fleet.

    Per fleet and router: a freshly started emulator (cold KV cache), the router in front of it,
    the same trace slice replayed with `lodestar bench run`, then everything stopped. Prints one
    table per fleet (TTFT mean/P50/P99, TPOT, throughput, errors, emulator lag, validity) and the
    Lodestar-vs-best-peer ratios; writes compare.json, compare.md and a TTFT CDF per fleet.

    Example: lodestar bench compare --fleet hetero-mix8 --router sglang:cache_aware --router lodestar:cold
    """
    from rich.console import Console

    from lodestar.bench.compare.plan import EXCLUDED, RunPlan, default_cases, parse_case

    console = Console(width=160)
    try:
        cases = [parse_case(r) for r in router] if router else default_cases()
    except ValueError as exc:
        _fail(str(exc))
    if list_routers:
        for c in cases:
            console.print(f"{c.key:<28} {c.label:<32} {c.note}", highlight=False)
        if not router:
            console.print("\nnot in the default set (run with --router):", highlight=False)
            for key, why in EXCLUDED.items():
                console.print(f"{key:<28} {why}", highlight=False)
        return
    try:
        plan = RunPlan(
            trace=trace,
            load=load,
            duration_s=duration,
            start_s=start,
            warmup_start_s=warmup_start,
            warmup_duration_s=warmup_duration,
            time_scale=time_scale,
            ttft_cap_s=ttft_cap,
            max_late_step_frac=max_late_frac,
            max_send_lag_ms=max_send_lag_ms,
            lodestar_embedded=lodestar_embedded,
        )
    except ValueError as exc:
        _fail(str(exc))
    fleets = list(fleet) if fleet else list(DEFAULT_FLEETS)
    if rebuild:
        problems, missed = _rebuild(console, plan, out)
    else:
        problems, missed = _run_all(console, plan, cases, fleets, out)
    if problems:
        typer.echo(f"{problems} run(s) failed or were invalid (see the tables)", err=True)
        raise typer.Exit(1)
    if check_targets and missed:
        typer.echo(f"{missed} target(s) not met", err=True)
        raise typer.Exit(1)


def _run_all(console: Any, plan: RunPlan, cases: list[RouterCase], fleets: list[str], out: Path) -> tuple[int, int]:
    from lodestar.bench.compare.runner import Runner
    from lodestar.bench.compare.workload import prepare
    from lodestar.cluster.spec import ClusterFileError, load_cluster
    from lodestar.localinfra.settings import LocalInfraSettings

    specs = {}
    for name in fleets:
        try:
            specs[name] = load_cluster(name)
        except ClusterFileError as exc:
            _fail(str(exc))
    requests, workload_name = _requests(plan.trace)
    local = LocalInfraSettings()
    runner = Runner(plan, local, lambda text: console.print(text, highlight=False))
    report: dict[str, Any] = {
        "benchmark": "lodestar bench compare",
        "command": " ".join(["lodestar", "bench", "compare", *sys.argv[3:]]) if len(sys.argv) > 2 else None,
        "started_at": datetime.now(UTC).isoformat(),
        "plan": plan.__dict__,
        "machine": _machine(),
        "fleets": {},
    }
    markdown: list[str] = []
    problems = missed = 0
    for name, spec in specs.items():
        fleet_dir = out / name.replace("/", "_").removesuffix(".yaml")
        try:
            workload = prepare(
                spec,
                workload_name,
                requests,
                plan.load,
                plan.start_s,
                plan.duration_s,
                plan.warmup_start_s,
                plan.warmup_duration_s,
                fleet_dir,
            )
        except ValueError as exc:
            _fail(f"{name}: {exc}")
        if any(c.warm for c in cases) and not workload.warmup:
            _fail(
                f"{name}: the warm-up window {plan.warmup_start_s:g}+{plan.warmup_duration_s:g} s holds no request of "
                f"{workload_name} at {workload.rate_rps:.3f} req/s (the rescaled trace ends before it): lower "
                "--warmup-start"
            )
        hardware = [i.hardware_name for i in spec.instances()]
        console.print(
            f"[bold]{spec.name}[/] ({', '.join(hardware)}): capacity {workload.capacity_rps:.3f} req/s on "
            f"{workload_name}; load {plan.load:g} → {workload.rate_rps:.3f} req/s; measured window "
            f"{plan.start_s:g}+{plan.duration_s:g} s = {len(workload.measure)} requests; time scale "
            f"{plan.time_scale:g} (≈ {plan.duration_s * plan.time_scale:.0f} wall s of arrivals per router); "
            f"Lodestar's router {'in its gateway process' if plan.lodestar_embedded else 'a process of its own'}",
            highlight=False,
        )
        t0 = time.monotonic()
        fleet_run = runner.run_fleet(name, spec, workload, cases, fleet_dir)
        head: dict[str, Any] = {"cluster": spec.name, "hardware": hardware, "workload": workload.describe()}
        head["wall_s"] = time.monotonic() - t0
        fleet_json, lines, bad, miss = _report_fleet(console, plan, head, fleet_run.results, fleet_dir)
        report["fleets"][name] = fleet_json
        markdown += lines
        problems, missed = problems + bad, missed + miss
        _write(out, report, markdown)
    report["finished_at"] = datetime.now(UTC).isoformat()
    _write(out, report, markdown)
    console.print(f"wrote {out / 'compare.json'} and {out / 'compare.md'}", highlight=False)
    return problems, missed


def _report_fleet(
    console: Any, plan: RunPlan, head: dict[str, Any], results: list[CaseResult], fleet_dir: Path
) -> tuple[dict[str, Any], list[str], int, int]:
    """Print one fleet's table and ratios, draw its plots; (its JSON, Markdown lines, invalid
    runs, missed targets)."""
    from lodestar.bench.compare.summary import fleet_table, is_heterogeneous, markdown_table, ratio_lines, ratios
    from lodestar.bench.plots import write_plots

    workload = head["workload"]
    hetero = is_heterogeneous(head["hardware"])
    title = (
        f"{head['cluster']} · {workload['workload']} · {workload['rate_rps']:.2f} req/s (load {plan.load:g}) · "
        f"{workload['measure']['requests']} requests · time scale {plan.time_scale:g} · workload-time latencies"
    )
    console.print(fleet_table(title, results, plan))
    found = ratios(results, plan)
    lines = ratio_lines(found, hetero)
    for line in lines:
        console.print(line, highlight=False)
    series = [(r.case.label, r.run.request_records) for r in results if r.run is not None]
    plots = write_plots(fleet_dir / "plots", series, title) if series else []
    for p in plots:
        console.print(f"wrote {p}", highlight=False)
    fleet_json = {
        **head,
        "heterogeneous": hetero,
        "results": [r.to_json(plan) for r in results],
        "ratios": [q.to_json(hetero) for q in found],
        "plots": [str(p) for p in plots],
    }
    markdown = [f"### {title}", "", markdown_table(results, plan), "", *(f"- {line}" for line in lines), ""]
    problems = sum(1 for r in results if not r.valid(plan))
    return fleet_json, markdown, problems, sum(1 for q in found if not q.met(hetero))


def _rebuild(console: Any, plan: RunPlan, out: Path) -> tuple[int, int]:
    """Tables, ratios, plots and files again from ``OUT/compare.json`` and the runs' bench JSON
    files, judged with this invocation's validity thresholds (the rest of the plan is the one
    the runs had; nothing is run)."""
    from lodestar.bench.compare.plan import RunPlan
    from lodestar.bench.compare.summary import CaseResult

    path = out / "compare.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        fleets = dict(report["fleets"])
        saved = dict(report["plan"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _fail(f"{path}: not a compare result ({exc})")
    thresholds = ("max_late_step_frac", "max_send_lag_ms")
    saved.pop("max_send_lag_wall_ms", None)  # (files of the first version)
    try:
        plan = RunPlan(**{**saved, **{k: getattr(plan, k) for k in thresholds}})
    except (TypeError, ValueError) as exc:
        _fail(f"{path}: plan: {exc}")
    report["plan"] = plan.__dict__
    markdown: list[str] = []
    problems = missed = 0
    for name, fleet in fleets.items():
        try:
            results = [CaseResult.from_json(row) for row in fleet["results"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _fail(f"{path}: fleet {name}: {exc}")
        head = {k: fleet[k] for k in ("cluster", "hardware", "workload", "wall_s") if k in fleet}
        fleet_dir = out / name.replace("/", "_").removesuffix(".yaml")
        fleet_json, lines, bad, miss = _report_fleet(console, plan, head, results, fleet_dir)
        report["fleets"][name] = fleet_json
        markdown += lines
        problems, missed = problems + bad, missed + miss
    _write(out, report, markdown)
    console.print(f"wrote {out / 'compare.json'} and {out / 'compare.md'}", highlight=False)
    return problems, missed


def _write(out: Path, report: dict[str, Any], markdown: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    (out / "compare.md").write_text("\n".join(markdown) + "\n", encoding="utf-8")


def _requests(target: str) -> tuple[list[Any], str]:
    from pydantic import ValidationError

    from lodestar.workload.build import build_workload
    from lodestar.workload.catalog import TracesSettings
    from lodestar.workload.errors import WorkloadError
    from lodestar.workload.resolve import spec_for_target

    try:
        traces_dir = TracesSettings().traces_dir
    except ValidationError as err:
        _fail(f"LODESTAR_TRACES_DIR: {err.errors()[0]['msg']}")
    try:
        workload = build_workload(spec_for_target(target), traces_dir=traces_dir, origin=target)
    except WorkloadError as err:
        _fail(str(err))
    return list(workload.requests), workload.name


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
