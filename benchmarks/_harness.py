"""Shared pieces of the benchmark scripts: a fresh ``lodestar emulate`` process per run, running
the real CLI as a user would (command echoed), the machine's load, and the comparison table."""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from lodestar.localinfra.ports import free_port_block
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings

REPO = Path(__file__).resolve().parent.parent


def lodestar_argv() -> list[str]:
    exe = Path(sys.executable).with_name("lodestar")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from lodestar.cli.app import main; main()"]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def emulator(args: Sequence[str], n_instances: int, label: str) -> Iterator[list[str]]:
    """A freshly started ``lodestar emulate ARGS`` on free consecutive ports; yields the base
    URLs (in the cluster's instance order) and stops the process afterwards."""
    base = free_port_block(n_instances)
    urls = [f"http://127.0.0.1:{base + k}" for k in range(n_instances)]
    infra = LocalInfraSettings(home=REPO / ".lodestar")
    argv = [*lodestar_argv(), "emulate", *args, "--port", str(base)]
    proc = ManagedProcess(
        name=f"{label}-{uuid.uuid4().hex[:6]}", argv=argv, run_dir=infra.run_dir, log_dir=infra.log_dir, cwd=REPO
    )
    print(f"$ {shlex.join(argv)}", flush=True)
    proc.start(ready=lambda: all(_healthy(u) for u in urls), timeout_s=90)
    try:
        yield urls
    finally:
        proc.stop()


def run(argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, echoing it; its output goes to ours. Raises on failure."""
    print(f"$ {shlex.join(argv)}", flush=True)
    full_env = {**os.environ, **(env or {})}
    started = time.monotonic()
    proc = subprocess.run(list(argv), env=full_env, cwd=REPO, text=True, check=False)
    print(f"  ({time.monotonic() - started:.0f} s, exit {proc.returncode})", flush=True)
    if proc.returncode != 0:
        raise SystemExit(f"command failed with exit {proc.returncode}: {shlex.join(argv)}")
    return proc


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def rel_diff(value: float, reference: float) -> float:
    """``(value − reference) / reference`` (NaN when the reference is 0 or NaN)."""
    if not reference or math.isnan(reference) or math.isnan(value):
        return float("nan")
    return (value - reference) / reference


@dataclass(frozen=True)
class Row:
    """One compared figure: ``a`` is the reference, ``b`` the one checked against it; a row with
    ``tolerance`` is a must-pass check."""

    metric: str
    a: float
    b: float
    unit_scale: float = 1e3
    unit: str = "ms"
    tolerance: float | None = None

    @property
    def diff(self) -> float:
        return rel_diff(self.b, self.a)

    @property
    def passed(self) -> bool | None:
        if self.tolerance is None:
            return None
        return not math.isnan(self.diff) and abs(self.diff) <= self.tolerance

    def to_json(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "a_s": self.a,
            "b_s": self.b,
            "rel_diff": self.diff,
            "tolerance": self.tolerance,
            "passed": self.passed,
        }


def print_rows(title: str, a_name: str, b_name: str, rows: Sequence[Row]) -> None:
    table = Table(title=title)
    for col in ("metric", a_name, b_name, "diff", "check"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for r in rows:
        check = "" if r.passed is None else ("[green]ok[/]" if r.passed else "[red]FAIL[/]")
        if r.tolerance is not None:
            check += f" (±{r.tolerance * 100:g} %)"
        table.add_row(
            f"{r.metric} ({r.unit})",
            f"{r.a * r.unit_scale:.1f}",
            f"{r.b * r.unit_scale:.1f}",
            f"{r.diff * 100:+.1f} %",
            check,
        )
    Console(width=120).print(table)
