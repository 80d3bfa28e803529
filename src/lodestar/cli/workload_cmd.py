"""``lodestar workload``: summarise, list and export request streams.

Every command takes a *target*: a shorthand name of a shared trace (``lodestar workload list``),
a trace file (format recognised from its first line) or a spec ``.yaml``. Bad input prints one
line naming the file and field and exits with status 1, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from lodestar.workload.build import build_workload
from lodestar.workload.catalog import CATALOG, TracesSettings
from lodestar.workload.errors import WorkloadError
from lodestar.workload.resolve import spec_for_target
from lodestar.workload.summary import LengthStats, WorkloadSummary, summarize
from lodestar.workload.traces.lodestar_jsonl import dump_requests
from lodestar.workload.traces.servegen import dataset_path_for
from lodestar.workload.workload import Workload

TARGET_HELP = "shorthand name (see `lodestar workload list`), trace file, or spec .yaml"


def build() -> typer.Typer:
    app = typer.Typer(help="Workloads: trace summaries, shorthand names, request-stream export.", no_args_is_help=True)

    @app.command()
    def summary(
        target: Annotated[str, typer.Argument(help=TARGET_HELP)],
        json_path: Annotated[Path | None, typer.Option("--json", help="also write the summary as JSON here")] = None,
    ) -> None:
        """Requests, span, rate, length percentiles and prefix reuse of a workload."""
        workload = _build_or_exit(target)
        try:
            result = summarize(workload.requests)
        except WorkloadError as err:
            _fail(f"{target}: {err}")
        Console(width=120).print(_summary_table(workload, result))
        if json_path is not None:
            _write(json_path, json.dumps({"workload": workload.name, **result.model_dump()}, indent=2) + "\n")

    @app.command("list")
    def list_cmd() -> None:
        """The shorthand names and whether each resolves under LODESTAR_TRACES_DIR."""
        traces_dir = _traces_dir()
        table = Table(title=f"Shared traces under {traces_dir}")
        for column in ("name", "kind", "resolves", "path", "what"):
            table.add_column(column)
        for entry in CATALOG:
            path = entry.path(traces_dir)
            found = path.is_file() and (entry.kind != "servegen" or dataset_path_for(path).is_file())
            table.add_row(entry.name, entry.kind, "yes" if found else "NO", str(path), entry.description)
        Console(width=160).print(table)

    @app.command()
    def export(
        target: Annotated[str, typer.Argument(help=TARGET_HELP)],
        out: Annotated[Path, typer.Option("--out", help="output .jsonl (one request per line)")],
    ) -> None:
        """Write the request stream as JSON Lines that rebuild every RequestSpec exactly."""
        workload = _build_or_exit(target)
        _write(out, dump_requests(workload.requests))
        typer.echo(f"wrote {len(workload.requests)} requests to {out}")
        if workload.faults:
            typer.echo(f"note: {len(workload.faults)} instance fault(s) are part of the spec, not of the file")

    return app


def _build_or_exit(target: str) -> Workload:
    try:
        return build_workload(spec_for_target(target), traces_dir=_traces_dir(), origin=target)
    except WorkloadError as err:
        _fail(str(err))


def _traces_dir() -> Path:
    try:
        return TracesSettings().traces_dir
    except ValidationError as err:
        _fail(f"LODESTAR_TRACES_DIR: {err.errors()[0]['msg']}")


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        _fail(f"{path}: cannot write ({err.strerror or err})")


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _summary_table(workload: Workload, result: WorkloadSummary) -> Table:
    table = Table(title=f"Workload {workload.name}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    rate = f"{result.mean_rps:.2f}" if result.mean_rps is not None else "n/a (zero span)"
    rows = [
        ("requests", f"{result.requests:,}"),
        ("span (s)", f"{result.span_s:,.0f}"),
        ("mean rate (req/s)", rate),
        ("input tokens mean / p50 / p90 / p99", _lengths(result.input_tokens)),
        ("output tokens mean / p50 / p90 / p99", _lengths(result.output_tokens)),
        ("prompt segments (blocks)", f"{result.prompt_segments:,}"),
        ("prefix reuse (infinite cache)", f"{result.prefix_reuse_frac * 100:.1f} %"),
        ("sessions / tenants", f"{result.sessions} / {result.tenants}"),
        ("instance faults", str(len(workload.faults))),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _lengths(stats: LengthStats) -> str:
    return f"{stats.mean:.0f} / {stats.p50:.0f} / {stats.p90:.0f} / {stats.p99:.0f}"
