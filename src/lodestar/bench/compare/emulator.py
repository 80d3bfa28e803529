"""The emulated fleet of one run, and whether it kept real time.

Every peer run gets a fresh ``lodestar emulate --cluster FLEET --time-scale S`` on a free port
block (cold KV cache, counters at zero); Lodestar's runs use the stack's own emulator, the same
command. After a run, :func:`scrape_fleet` totals the emulator's own series over instances: how
many engine steps it applied and how many of them later than its warning threshold (50 ms wall),
the step- and chunk-lag bucket holding the P99, and the prefix-cache hit rate. A run whose
emulator applied more than ``max_late_step_frac`` of its steps late fell behind real time: its
latencies include the emulator's own delay, and the run is reported invalid.

The emulator stands for GPUs that would not share CPU with the router under test, so every
run raises its scheduling priority (:func:`prioritize`: nice −10 on each of its threads) and,
one step below, the router under test's data path (nice −5: the peer's process; Lodestar's
gateway, router, collector and broker), for peer and Lodestar runs alike, where the OS allows it
(root or CAP_SYS_NICE): on a machine shared with other work this keeps the fleet on time and
measures the routers rather than the unrelated load, without favouring any router. Lodestar's
off-path services — the trainer and the history writer, which a deployment runs on other
machines and no request waits for — run in the background (nice +10), so that on a 2-core
machine they do not make the emulator (the GPUs) fall behind.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from lodestar.localinfra.ports import free_port_block
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings

_COUNTERS = (
    "lodestar_emulator_late_steps_total",
    "lodestar_emulator_step_lag_seconds_count",
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_hits_total",
    "vllm:num_preemptions_total",
    "vllm:request_success_total",
)
_HISTOGRAMS = ("lodestar_emulator_step_lag_seconds", "lodestar_emulator_delivery_lag_seconds")


@dataclass(frozen=True)
class FleetHealth:
    """Totals over the fleet's instances since the emulator started."""

    steps: float
    late_steps: float
    step_lag_p99_wall_s: float
    chunk_lag_p99_wall_s: float
    prefix_hit_frac: float
    preemptions: float
    finished: float

    @property
    def late_frac(self) -> float:
        return self.late_steps / self.steps if self.steps else 0.0

    def to_json(self) -> dict[str, float]:
        return {**asdict(self), "late_frac": self.late_frac}


def parse_health(texts: Iterable[str]) -> FleetHealth:
    """:class:`FleetHealth` from the ``/metrics`` texts of every instance."""
    totals = dict.fromkeys(_COUNTERS, 0.0)
    buckets: dict[str, dict[float, float]] = {h: {} for h in _HISTOGRAMS}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name in totals:
                    totals[s.name] += s.value
                elif s.name.endswith("_bucket") and s.name[: -len("_bucket")] in buckets:
                    le = float(s.labels["le"])
                    hist = buckets[s.name[: -len("_bucket")]]
                    hist[le] = hist.get(le, 0.0) + s.value
    queries = totals["vllm:prefix_cache_queries_total"]
    return FleetHealth(
        steps=totals["lodestar_emulator_step_lag_seconds_count"],
        late_steps=totals["lodestar_emulator_late_steps_total"],
        step_lag_p99_wall_s=bucket_quantile(buckets["lodestar_emulator_step_lag_seconds"], 0.99),
        chunk_lag_p99_wall_s=bucket_quantile(buckets["lodestar_emulator_delivery_lag_seconds"], 0.99),
        prefix_hit_frac=totals["vllm:prefix_cache_hits_total"] / queries if queries else 0.0,
        preemptions=totals["vllm:num_preemptions_total"],
        finished=totals["vllm:request_success_total"],
    )


def bucket_quantile(cumulative: dict[float, float], q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` (cumulative counts by ``le``); NaN if empty."""
    if not cumulative:
        return math.nan
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]]
    if total <= 0:
        return math.nan
    for le in bounds:
        if cumulative[le] >= q * total:
            return le
    return bounds[-1]


def scrape_fleet(urls: Sequence[str], timeout_s: float = 10.0) -> FleetHealth:
    return parse_health(httpx.get(f"{u}/metrics", timeout=timeout_s).text for u in urls)


EMULATOR_NICE = -10
ROUTER_NICE = -5
BACKGROUND_NICE = 10
#: Lodestar components no request waits for
OFF_PATH_COMPONENTS = frozenset({"trainer", "history"})


def component_niceness(name: str) -> int:
    """The niceness of one process of the Lodestar stack during a comparison."""
    if name == "emulator":
        return EMULATOR_NICE
    return BACKGROUND_NICE if name in OFF_PATH_COMPONENTS else ROUTER_NICE


def prioritize(pid: int | None, niceness: int = EMULATOR_NICE) -> bool:
    """Set ``niceness`` on every thread of ``pid`` (Linux nice values are per thread); False
    when the process is gone or the OS refuses (unprivileged: only lowering is allowed)."""
    if pid is None:
        return False
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    try:
        for tid in tids:
            os.setpriority(os.PRIO_PROCESS, tid, niceness)
    except OSError:
        return False
    return True


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def emulate_argv(lodestar: Sequence[str], cluster: str, base_port: int, time_scale: float) -> list[str]:
    return [*lodestar, "emulate", "--cluster", cluster, "--port", str(base_port), "--time-scale", f"{time_scale:g}"]


@contextmanager
def fresh_emulator(
    lodestar: Sequence[str],
    cluster: str,
    n_instances: int,
    time_scale: float,
    local: LocalInfraSettings,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[list[str], list[str]]]:
    """A newly started emulated fleet on free ports; yields (instance base URLs in the
    cluster's order, its command line) and stops it afterwards."""
    base = free_port_block(n_instances)
    urls = [f"http://127.0.0.1:{base + k}" for k in range(n_instances)]
    argv = emulate_argv(lodestar, cluster, base, time_scale)
    proc = ManagedProcess(
        name=f"compare-emulator-{uuid.uuid4().hex[:6]}",
        argv=argv,
        run_dir=local.run_dir,
        log_dir=local.log_dir,
        env=env,
    )
    pid = proc.start(ready=lambda: all(healthy(u) for u in urls), timeout_s=120.0)
    prioritize(pid)
    try:
        yield urls, argv
    finally:
        proc.stop()
