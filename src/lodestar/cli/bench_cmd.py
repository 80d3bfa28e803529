"""``lodestar bench``: send a workload open-loop to OpenAI-compatible servers and measure it.

``lodestar bench run TARGET --url URL`` sends the workload at its arrival times (streaming)
and prints TTFT/TPOT/E2E, throughput and errors; ``lodestar bench plot A.json B.json --out DIR``
draws saved runs side by side; ``lodestar bench compare`` runs peer routers and Lodestar live
on the same emulated fleet (:mod:`lodestar.bench.compare`). Bad input prints one ``error:``
line and exits with status 2; a run in which every request failed exits with status 1 after
its report.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn
from urllib.parse import urlsplit

import typer

from lodestar.bench.compare import cli as compare_cli

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from lodestar.bench.results import BenchRecord
    from lodestar.workload.workload import Workload

PRERENDER_MAX_TOKENS = 300_000  # prompt tokens rendered up front (about 2 s of CPU) instead of in a worker
TARGET_HELP = "workload: shared trace name (`lodestar workload list`), trace file or spec .yaml"


def build() -> typer.Typer:
    app = typer.Typer(help="Load generator: replay a workload against OpenAI-compatible servers.", no_args_is_help=True)
    app.command("run")(run)
    app.command("plot")(plot)
    app.command("compare")(compare_cli.compare)
    return app


def run(
    target: Annotated[str, typer.Argument(help=TARGET_HELP)],
    url: Annotated[
        list[str],
        typer.Option(
            "--url",
            "-u",
            help="base URL of an OpenAI-compatible server (http://host:port, with or without /v1); "
            "repeat to spread requests over several, round-robin",
        ),
    ],
    endpoint: Annotated[
        str,
        typer.Option(help="completions (prompt tokens exactly the workload's) or chat (adds the chat template)"),
    ] = "completions",
    model: Annotated[str | None, typer.Option(help="model name to send (default: each request's own)")] = None,
    api_key: Annotated[
        str | None, typer.Option(help="sent as Authorization: Bearer (default: $OPENAI_API_KEY)", show_default=False)
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            help="rescale the whole workload's arrivals to this mean rate (req/s, workload time); a --duration "
            "window of a trace keeps the trace's own ups and downs"
        ),
    ] = None,
    speedup: Annotated[float | None, typer.Option(help="divide arrival times by this factor")] = None,
    duration: Annotated[
        float | None, typer.Option(help="send only the first DURATION seconds of the (rescaled) workload")
    ] = None,
    max_requests: Annotated[int | None, typer.Option(help="send at most the first N requests")] = None,
    time_scale: Annotated[
        float,
        typer.Option(
            help="wall seconds per workload second, to pair with `lodestar emulate --time-scale`: arrivals are "
            "stretched by it and measured latencies divided by it"
        ),
    ] = 1.0,
    label: Annotated[str, typer.Option(help="name of this run in tables, JSON and plots")] = "bench",
    exact_length: Annotated[
        bool,
        typer.Option(help="send min_tokens = max_tokens and ignore_eos (vLLM) so every answer has its full length"),
    ] = True,
    max_connections: Annotated[int, typer.Option(min=1, help="connection pool size of the client")] = 1000,
    timeout: Annotated[float, typer.Option(min=0.1, help="wall seconds to wait for a response's next bytes")] = 600.0,
    lag_warn_ms: Annotated[
        float, typer.Option(min=0.0, help="warn when the p99 send lag exceeds this (wall ms)")
    ] = 20.0,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the results (summary + records) here")] = None,
    plots: Annotated[Path | None, typer.Option(help="directory for PNG plots (TTFT over time, CDF)")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar on stderr")] = True,
) -> None:
    """Send a workload open-loop and report TTFT, TPOT, E2E, throughput and errors.

    Each request streams and leaves at its arrival time, answered or not; latencies are timed client-side.

    Example: lodestar bench run azure-conv --url http://127.0.0.1:8001 --rate 2 --duration 60 --json out.json
    """
    import asyncio
    import contextlib

    from lodestar.bench.client import ClientConfig, run_sends
    from lodestar.bench.payload import BodyOptions
    from lodestar.bench.plots import write_plots
    from lodestar.bench.prepare import Shaping, shape, window_rate_note, window_rps
    from lodestar.bench.progress import ProgressObserver
    from lodestar.bench.report import print_report
    from lodestar.bench.results import build_run, write_json
    from lodestar.bench.schedule import TimeScale, plan_sends
    from lodestar.gc_tuning import freeze_startup_heap

    if endpoint not in ("completions", "chat"):
        _fail(f"--endpoint {endpoint!r}: expected completions or chat")
    urls = [_base_url(u) for u in url]
    try:
        scale = TimeScale(time_scale)
    except ValueError as exc:
        _fail(f"--time-scale: {exc}")
    for name, value in (("--rate", rate), ("--speedup", speedup), ("--duration", duration)):
        if value is not None and not value > 0:
            _fail(f"{name} must be > 0, got {value:g}")
    workload = _load(target)
    try:
        requests = shape(workload.requests, Shaping(rate, speedup, duration, max_requests))
    except ValueError as exc:
        _fail(str(exc))
    if not requests:
        _fail("the workload has no requests in the chosen window")
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY") or None
    run_id = uuid.uuid4().hex[:8]
    config = ClientConfig(
        body=BodyOptions(
            endpoint="chat" if endpoint == "chat" else "completions", model=model, exact_length=exact_length
        ),
        api_key=key,
        run_id=run_id,
        max_connections=max_connections,
        timeout_s=timeout,
    )
    sends = plan_sends(requests, urls, scale)
    rps = window_rps(requests)
    span = requests[-1].arrival_s - requests[0].arrival_s
    rate_text = f"at {rps:.2f} req/s " if rps else ""
    typer.echo(
        f"{len(requests)} requests of {workload.name} {rate_text}over {span:.1f} s → {', '.join(urls)} "
        f"({endpoint}, streaming, open loop)"
    )
    note = window_rate_note(rate, rps)
    if note:
        typer.echo(note)
    if scale.factor != 1.0:
        typer.echo(
            f"time scale {scale.factor:g}: sending over {scale.to_wall(span):.1f} wall s; "
            f"latencies are reported in workload seconds (measured ÷ {scale.factor:g})"
        )
    started_at = datetime.now(UTC)
    try:
        # Prompt text costs CPU: render it all before the clock starts when that is quick, else
        # ahead in a worker process, off the event loop that times the streams.
        prerender = sum(r.prompt.n_tokens for r in requests) <= PRERENDER_MAX_TOKENS
        with contextlib.ExitStack() as stack:
            pool = None if prerender else stack.enter_context(_render_pool())
            observer = stack.enter_context(ProgressObserver(len(sends), enabled=progress))
            lookahead = len(sends) if prerender else 64
            freeze_startup_heap()  # no full garbage collection walks the workload while sends are timed
            results, stats = asyncio.run(run_sends(sends, config, observer, pool, lookahead))
    except KeyboardInterrupt:
        typer.echo("interrupted: no results written", err=True)
        raise typer.Exit(130) from None
    meta: dict[str, Any] = {
        "workload": workload.name,
        "target": target,
        "urls": urls,
        "endpoint": endpoint,
        "model": model,
        "label": label,
        "run_id": run_id,
        "started_at": started_at.isoformat(),
        "time_scale": scale.factor,
        "times_in": "workload seconds (wall-clock measurement ÷ time_scale)",
        "rate_rps": rps,
        "speedup": speedup,
        "duration_s": duration,
        "n_requests": len(requests),
        "exact_length": exact_length,
    }
    result = build_run(label, meta, results, stats, scale, requests[0].arrival_s, lag_warn_ms / 1e3)
    print_report(result, lag_warn_ms / 1e3)
    if json_path is not None:
        _write(json_path, lambda: write_json(json_path, result))
        typer.echo(f"wrote {json_path}")
    if plots is not None:
        written: list[Path] = []
        _write(plots, lambda: written.extend(write_plots(plots, [(label, result.request_records)], workload.name)))
        for path in written:
            typer.echo(f"wrote {path}")
    if result.summary.n_errors == result.summary.n_requests:
        typer.echo(f"error: every request failed ({_first_detail(result.records)})", err=True)
        raise typer.Exit(1)


def plot(
    files: Annotated[list[Path], typer.Argument(help="result files of `lodestar bench run --json`")],
    out: Annotated[Path, typer.Option("--out", help="directory for the PNGs")],
    title: Annotated[str | None, typer.Option(help="plot title (default: the workloads' names)")] = None,
) -> None:
    """Plot saved runs side by side: TTFT over time and TTFT CDF, one line per file."""
    from lodestar.bench.plots import write_plots
    from lodestar.bench.results import ResultFileError, read_json

    try:
        runs = [read_json(f) for f in files]
    except ResultFileError as exc:
        _fail(str(exc))
    labels = _unique_labels([r.label for r in runs], files)
    names = dict.fromkeys(str(r.meta.get("workload", "?")) for r in runs)
    written: list[Path] = []
    _write(
        out,
        lambda: written.extend(
            write_plots(
                out, [(lab, r.request_records) for lab, r in zip(labels, runs, strict=True)], title or " / ".join(names)
            )
        ),
    )
    for path in written:
        typer.echo(f"wrote {path}")


# --- helpers ----------------------------------------------------------------------------------


def _render_pool() -> ProcessPoolExecutor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))


def _base_url(text: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing ``/`` or ``/v1``."""
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _fail(f"--url {text!r}: expected http://host:port or https://host[:port]")
    try:
        parts.port  # noqa: B018 — raises on a bad port
    except ValueError as exc:
        _fail(f"--url {text!r}: {exc}")
    base = text.strip().rstrip("/")
    return base.removesuffix("/v1")


def _load(target: str) -> Workload:
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
        return build_workload(spec_for_target(target), traces_dir=traces_dir, origin=target)
    except WorkloadError as err:
        _fail(str(err))


def _unique_labels(labels: list[str], files: list[Path]) -> list[str]:
    if len(set(labels)) == len(labels):
        return labels
    return [f"{lab} ({f.stem})" for lab, f in zip(labels, files, strict=True)]


def _first_detail(records: Sequence[BenchRecord]) -> str:
    for b in records:
        if b.detail:
            return f"{b.record.error}: {b.detail}"
    return "no detail"


def _write(path: Path, action: Callable[[], object]) -> None:
    try:
        action()
    except OSError as err:
        _fail(f"{path}: cannot write ({err.strerror or err})")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
