"""One fleet, router by router: fresh emulator, router, ``lodestar bench run``, scrape, stop.

Peer runs: a new ``lodestar emulate`` on free ports, the peer router in front of it, the bench
through the router; then the emulator's health is scraped and both are stopped. Lodestar cold:
a new stack, the bench through its gateway. Lodestar warmed: a new stack, the *warm-up* slice
through its gateway, a wait until the router decides with a model, the emulator restarted
and every other process too (cold KV cache; an empty prefix index, which described the old
emulator's caches; an empty broker, see :meth:`LodestarStack.redeploy_keeping_model`) with
only the newest model carried over to the new broker, a wait until the new router decides with
that model, then the measured slice.
The bench is the real CLI in a subprocess (at the emulator's raised priority, where allowed),
its output in a log next to its JSON.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lodestar.bench.results import BenchRun, ResultFileError, read_json
from lodestar.cluster.spec import ClusterSpec
from lodestar.localinfra.process import ProcessStartError
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.peers.install import PeerInstallError
from lodestar.peers.launch import PeerStartError

from .emulator import EMULATOR_NICE, fresh_emulator, scrape_fleet
from .plan import RouterCase, RunPlan
from .routers import LodestarStack, start_peer_router
from .summary import CaseResult
from .workload import PreparedWorkload

EMULATOR_ENV = {"LODESTAR_EMULATOR_LOG_LEVEL": "WARNING"}

Echo = Callable[[str], None]


def lodestar_cmd() -> list[str]:
    return [sys.executable, "-m", "lodestar"]


@dataclass
class FleetRun:
    fleet: str
    cluster: ClusterSpec
    workload: PreparedWorkload
    results: list[CaseResult]


class CaseFailed(RuntimeError):
    """A case could not run (a process did not start, the bench failed)."""


class Runner:
    def __init__(
        self,
        plan: RunPlan,
        local: LocalInfraSettings,
        echo: Echo,
    ) -> None:
        self.plan = plan
        self.local = local
        self.echo = echo

    # --- the bench -------------------------------------------------------------------------

    def bench_argv(self, target: Path, url: str, label: str, json_path: Path) -> list[str]:
        p = self.plan
        return [
            *lodestar_cmd(),
            "bench",
            "run",
            str(target),
            "--url",
            url,
            "--time-scale",
            f"{p.time_scale:g}",
            "--timeout",
            f"{p.ttft_cap_s * p.time_scale:g}",
            "--label",
            label,
            "--json",
            str(json_path),
            "--no-progress",
        ]

    def bench(self, target: Path, url: str, label: str, json_path: Path) -> tuple[BenchRun, list[str]]:
        argv = self.bench_argv(target, url, label, json_path)
        log_path = json_path.with_suffix(".log")
        self.echo(f"    $ {shlex.join(argv)}")
        with log_path.open("w", encoding="utf-8") as log:
            proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False, preexec_fn=_raise_priority)
        if proc.returncode not in (0, 1) or not json_path.exists():
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-1500:]
            raise CaseFailed(f"lodestar bench exited {proc.returncode}: {tail.strip()}")
        try:
            return read_json(json_path), argv
        except ResultFileError as exc:
            raise CaseFailed(str(exc)) from None

    # --- one fleet -------------------------------------------------------------------------

    def run_fleet(
        self, fleet: str, cluster: ClusterSpec, workload: PreparedWorkload, cases: Sequence[RouterCase], out_dir: Path
    ) -> FleetRun:
        results: list[CaseResult] = []
        for k, case in enumerate(cases, 1):
            self.echo(f"  [{k}/{len(cases)}] {case.label} on {fleet}")
            result = self.run_case(fleet, cluster, workload, case, out_dir)
            results.append(result)
            m = result.metrics()
            reasons = result.invalid_reasons(self.plan)
            status = "valid" if not reasons else "INVALID: " + "; ".join(reasons)
            own = result.run.gateway_wall_ms if result.run is not None else None
            gateway = f", gateway's own P50 / P99 {own.p50:.2f} / {own.p99:.2f} ms wall" if own is not None else ""
            self.echo(
                f"    TTFT mean {m['ttft_mean_s'] * 1e3:,.0f} ms, P99 {m['ttft_p99_s'] * 1e3:,.0f} ms, "
                f"errors {m['errors']:.0f}/{m['n']:.0f}{gateway}, {result.wall_s:.0f} s wall — {status}"
            )
        return FleetRun(fleet, cluster, workload, results)

    def run_case(
        self, fleet: str, cluster: ClusterSpec, workload: PreparedWorkload, case: RouterCase, out_dir: Path
    ) -> CaseResult:
        result = CaseResult(case, load_before=os.getloadavg())
        started = time.monotonic()
        json_path = out_dir / f"{case.key.replace(':', '-')}.json"
        try:
            if case.kind == "peer":
                self._peer(fleet, cluster, workload, case, json_path, result)
            else:
                self._lodestar(cluster, workload, case, json_path, result)
        except (CaseFailed, ProcessStartError, PeerStartError, PeerInstallError, OSError) as exc:
            result.failure = f"{type(exc).__name__}: {str(exc)[:500]}"
        result.wall_s = time.monotonic() - started
        result.load_after = os.getloadavg()
        return result

    def _peer(
        self,
        fleet: str,
        cluster: ClusterSpec,
        workload: PreparedWorkload,
        case: RouterCase,
        json_path: Path,
        result: CaseResult,
    ) -> None:
        n = len(cluster.instances())
        with fresh_emulator(lodestar_cmd(), fleet, n, self.plan.time_scale, self.local, EMULATOR_ENV) as (urls, emu):
            router = start_peer_router(case.router, case.policy, urls, self.local)
            try:
                result.extra["router_argv"] = router.argv
                result.extra["emulator_argv"] = emu
                result.run, result.argv = self.bench(workload.measure_file, router.url, case.label, json_path)
                result.bench_json = str(json_path)
                result.health = scrape_fleet(urls)
            finally:
                router.stop()

    def _lodestar(
        self, cluster: ClusterSpec, workload: PreparedWorkload, case: RouterCase, json_path: Path, result: CaseResult
    ) -> None:
        if case.warm and not workload.warmup:
            raise CaseFailed("the warm-up window of the trace is empty (move --warmup-start)")
        stack = LodestarStack(
            cluster, case.policy, self.plan.time_scale, self.local, EMULATOR_ENV, self.plan.lodestar_embedded
        )
        stack.start()
        try:
            result.extra["emulator_argv"] = list(stack.emulator.argv)
            fallbacks_before: dict[str, float] = {}
            if case.warm:
                warm_json = json_path.with_name(json_path.stem + "-warmup.json")
                self.echo(f"    warm-up: {len(workload.warmup)} requests of another slice of the trace")
                warm_run, _ = self.bench(workload.warmup_file, stack.gateway_url, case.label + " warm-up", warm_json)
                model = stack.wait_for_model(self.plan.model_wait_wall_s)
                version = int(model.get("active_version") or 0) if model.get("confident") else 0
                self.echo(
                    f"    model after the warm-up: {f'v{version}' if version else 'none confident (run as is)'}; "
                    "every process restarted (empty broker, cold KV cache, empty prefix index) with the newest "
                    "model put back on the model topic"
                )
                stack.redeploy_keeping_model()
                reloaded = stack.wait_for_model(self.plan.model_wait_wall_s, min_version=version) if version else {}
                if version and (int(reloaded.get("active_version") or 0) < version or not reloaded.get("confident")):
                    raise CaseFailed(f"the restarted router did not take model v{version} back: {reloaded}")
                fallbacks_before = stack.fallbacks()
                result.extra["warmup"] = {
                    "bench_json": str(warm_json),
                    "requests": warm_run.summary.n_requests,
                    "errors": warm_run.summary.n_errors,
                    "ttft_mean_s": warm_run.latency.ttft_s.mean,
                    "model_after_warmup": model,
                    "model_after_restart": reloaded,
                    "fallbacks": fallbacks_before,
                }
            result.run, result.argv = self.bench(workload.measure_file, stack.gateway_url, case.label, json_path)
            result.bench_json = str(json_path)
            result.health = scrape_fleet(stack.instance_urls)
            result.extra["model_after"] = stack.model()
            result.extra["gateway_fallbacks"] = _minus(stack.fallbacks(), fallbacks_before)
        finally:
            stack.stop()


def _raise_priority() -> None:
    """In the bench's child before exec: the emulator's priority (see :mod:`.emulator`), so the
    load generator sends on time on a shared machine; left as is where the OS refuses."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, EMULATOR_NICE)


def _minus(after: dict[str, float], before: dict[str, float]) -> dict[str, Any]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}
