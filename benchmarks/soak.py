"""Soak: the whole local stack under a steady request rate, with flat memory and no event loss.

Starts what ``lodestar up`` runs (tansu broker, history service on chDB, an emulated fleet,
collector, router, trainer, gateway) on free ports with its own topic prefix, then sends
streaming chat requests through the gateway at ``--rate`` per second (evenly spaced, open loop)
for ``--minutes``. Every process's resident memory (RSS from ``/proc``, with its children) is sampled at the
start, after ``--warmup-s`` and every ``--sample-s`` until the end.

Event loss, per topic, once traffic stopped: every producer is stopped with SIGTERM (it flushes
its buffer and logs what it accepted, sent and dropped), the history service is given time to
store the rest, and the events stored in ClickHouse (named queries ``event_counts`` and
``event_ids``: distinct event ids) are compared with what the producers sent — outcomes also
with the number of requests sent. A must-pass check fails (exit status 1) when an event was
lost or dropped, outcomes ≠ requests, or a process died.

Memory growth (end − after warm-up) is reported, not judged: a leak shows as growth that
keeps going over a long run (default 30 minutes); a short run mostly shows caches filling.

    .venv/bin/python benchmarks/soak.py [--minutes 30] [--rate 4] [--json PATH]

The table goes to stdout, the JSON to ``--json`` (default ``out/benchmarks/soak-<time>.json``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import REPO, load_average

from lodestar.cluster.spec import load_cluster
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.localinfra.stack import Component, Stack, StackConfig
from lodestar.localinfra.stack_ports import StackPorts
from lodestar.workload.generator import RequestGenerator
from lodestar.workload.lengths import UniformLengths
from lodestar_history.client import HistoryClient

MODEL = "llama-3-8b"
TOPIC_PREFIX = "soak."
# table in ClickHouse → (producing component, its stop-log event)
PRODUCERS = {
    "request_outcomes": ("gateway", "gateway_stopped"),
    "route_decisions": ("router", "router_stopped"),
    "instance_states": ("collector", "collector_stopped"),
}
STOP_ORDER = ("gateway", "router", "trainer", "collector")


@dataclass
class Traffic:
    sent: int = 0
    ok: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    late_s_max: float = 0.0  # how far behind schedule the client sent (a busy machine)


@dataclass
class TopicCheck:
    table: str
    producer: str
    sent: int
    dropped: int
    stored: int
    stored_ids: int

    @property
    def lost(self) -> int:
        return self.sent - self.stored

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.dropped == 0 and self.stored_ids == self.stored


# --- processes -----------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError, ValueError):
            out += [int(c) for c in task.read_text().split()]
    return out


def _own_rss(pid: int) -> int | None:
    """``VmRSS`` of ``pid`` from ``/proc`` (Linux), None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0  # a zombie has no VmRSS


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of ``pid`` and its descendants (None if it is gone)."""
    if pid is None:
        return None
    own = _own_rss(pid)
    if own is None:
        return None
    total, todo = own, _children(pid)
    while todo:
        child = todo.pop()
        total += _own_rss(child) or 0
        todo += _children(child)
    return total


def rss_all(stack: Stack) -> dict[str, int | None]:
    return {c.name: rss_bytes(c.process.pid()) for c in stack.components}


def build_stack(args: argparse.Namespace, infra: LocalInfraSettings) -> Stack:
    cluster = load_cluster(args.cluster)
    ports = StackPorts.free(len(cluster.instances()))
    config = StackConfig(
        cluster=cluster,
        ports=ports,
        name=f"soak-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        topic_prefix=TOPIC_PREFIX,
        history=True,
        time_scale=args.time_scale,
    )
    return Stack(config, infra)


def stop_log(component: Component, event: str) -> dict[str, Any] | None:
    """The JSON log line ``event`` of a stopped component (its final counters)."""
    for line in reversed(component.process.log_tail(200_000).splitlines()):
        if f'"{event}"' in line:
            with contextlib.suppress(ValueError):
                record: dict[str, Any] = json.loads(line)
                return record
    return None


def log_events(component: Component, event: str) -> int:
    path = component.process.log_file
    with path.open("rb") as f:
        return sum(1 for line in f if f'"event": "{event}"'.encode() in line)


def metric(url: str, name: str) -> float | None:
    try:
        text = httpx.get(f"{url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


# --- traffic -------------------------------------------------------------------------------


async def send_traffic(gateway: str, rate: float, duration_s: float, seed: int, on_tick: Any, tick_s: float) -> Traffic:
    """Streaming chat requests at evenly spaced times; every answer read to the end."""
    n = max(1, int(rate * duration_s))
    gen = RequestGenerator(UniformLengths("soak", 64, 768, 8, 48), seed=seed)
    specs = gen.generate(np.arange(n, dtype=np.float64) / rate)
    traffic = Traffic()
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0), limits=limits) as client:

        async def one(k: int) -> None:
            spec = specs[k]
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": spec.prompt.text()}],
                "max_tokens": spec.output_tokens,
                "stream": True,
            }
            status = "transport_error"
            try:
                async with client.stream("POST", f"{gateway}/v1/chat/completions", json=body) as resp:
                    raw = await resp.aread()
                    if resp.status_code != 200:
                        status = str(resp.status_code)
                    elif b'"error"' in raw or not raw.endswith(b"data: [DONE]\n\n"):
                        status = "stream_error"
                    else:
                        status = "ok"
            except httpx.HTTPError as exc:
                status = f"transport_error:{type(exc).__name__}"
            traffic.statuses[status] += 1
            traffic.ok += status == "ok"

        start = time.monotonic()
        next_tick = start + tick_s
        tasks: set[asyncio.Task[None]] = set()
        for k, spec in enumerate(specs):
            delay = start + spec.arrival_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                traffic.late_s_max = max(traffic.late_s_max, -delay)
            task = asyncio.create_task(one(k))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            traffic.sent += 1
            if time.monotonic() >= next_tick:
                next_tick += tick_s
                on_tick(time.monotonic() - start, traffic)
        if tasks:
            await asyncio.gather(*tasks)
    return traffic


# --- the check ------------------------------------------------------------------------------


def stored_counts(history: HistoryClient, from_s: float, to_s: float) -> dict[str, int]:
    rows = history.query("event_counts", {"from_ts": from_s, "to_ts": to_s})["rows"]
    return {row["table_name"]: int(row["events"]) for row in rows}


def stored_ids(history: HistoryClient, from_s: float, to_s: float) -> dict[str, int]:
    """Distinct event ids per table, paged through ``event_ids``."""
    ids: dict[str, set[str]] = {}
    offset, page = 0, 10_000
    while True:
        params = {"from_ts": from_s, "to_ts": to_s, "limit": page, "offset": offset}
        rows = history.query("event_ids", params)["rows"]
        for row in rows:
            ids.setdefault(row["table_name"], set()).add(str(row["event_id"]))
        if len(rows) < page:
            return {table: len(s) for table, s in ids.items()}
        offset += page


def wait_stored(history: HistoryClient, want: dict[str, int], from_s: float, timeout_s: float) -> dict[str, int]:
    """Counts once every table holds at least what was sent (or when ``timeout_s`` is over)."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = stored_counts(history, from_s, time.time() + 3600)
        if all(counts.get(t, 0) >= n for t, n in want.items()) or time.monotonic() > deadline:
            return counts
        time.sleep(2.0)


def mib(n: int | None) -> str:
    return "—" if n is None else f"{n / 2**20:.0f}"


def print_report(result: dict[str, Any]) -> None:
    console = Console(width=120)
    t = result["traffic"]
    console.print(
        f"soak: {result['minutes']:g} min at {result['rate_rps']:g} req/s — sent {t['sent']}, ok {t['ok']}, "
        f"statuses {t['statuses']}, client late by up to {t['late_s_max']:.2f} s; load average "
        f"{result['load_before'][0]:.1f} → {result['load_after'][0]:.1f}"
    )
    mem = Table(title="resident memory (MiB)")
    for col in ("process", "start", "after warm-up", "end", "growth", "growth %"):
        mem.add_column(col, justify="left" if col == "process" else "right")
    for name, r in result["rss"].items():
        growth = None if r["end"] is None or r["warm"] is None else r["end"] - r["warm"]
        pct = "—" if growth is None or not r["warm"] else f"{100 * growth / r['warm']:+.1f} %"
        mem.add_row(name, mib(r["start"]), mib(r["warm"]), mib(r["end"]), mib(growth), pct)
    console.print(mem)
    ev = Table(title="events: sent by the producer vs stored in ClickHouse")
    for col in ("table", "producer", "sent", "dropped", "stored", "distinct ids", "lost", "check"):
        ev.add_column(col, justify="left" if col in ("table", "producer") else "right")
    for c in result["events"]:
        check = "[green]ok[/]" if c["passed"] else "[red]FAIL[/]"
        ev.add_row(
            c["table"], c["producer"], str(c["sent"]), str(c["dropped"]), str(c["stored"]), str(c["stored_ids"]),
            str(c["lost"]), check,
        )  # fmt: skip
    console.print(ev)
    for name, ok in result["checks"].items():
        console.print(f"{'[green]ok[/]' if ok else '[red]FAIL[/]'}  {name}")


@contextlib.contextmanager
def running(stack: Stack) -> Iterator[Stack]:
    stack.start(on_ready=lambda c: print(f"  {c.name} ready", flush=True))
    try:
        yield stack
    finally:
        stack.stop()


def soak(args: argparse.Namespace) -> dict[str, Any]:
    infra = LocalInfraSettings(home=REPO / ".lodestar")
    stack = build_stack(args, infra)
    load_before = load_average()
    duration_s = args.minutes * 60.0
    print(f"starting the stack ({stack.config.name}) …", flush=True)
    with running(stack):
        gateway, history_url = stack.component("gateway").url, stack.component("history").url
        assert gateway is not None and history_url is not None
        history = HistoryClient(history_url)
        start_wall = time.time()
        rss_start = rss_all(stack)
        samples: list[dict[str, Any]] = [{"t_s": 0.0, "rss": rss_start}]
        rss_warm: dict[str, int | None] = {}

        def tick(elapsed_s: float, traffic: Traffic) -> None:
            rss = rss_all(stack)
            samples.append({"t_s": round(elapsed_s, 1), "rss": rss})
            if not rss_warm and elapsed_s >= args.warmup_s:
                rss_warm.update(rss)
            dead = [c.name for c in stack.dead()]
            print(
                f"  {elapsed_s / 60:5.1f} min  sent {traffic.sent}  ok {traffic.ok}  "
                f"gateway {mib(rss.get('gateway'))} MiB  router {mib(rss.get('router'))} MiB"
                + (f"  DEAD: {dead}" if dead else ""),
                flush=True,
            )

        tick_s = min(args.sample_s, args.warmup_s)
        traffic = asyncio.run(send_traffic(gateway, args.rate, duration_s, args.seed, tick, tick_s))
        rss_end = rss_all(stack)
        samples.append({"t_s": round(duration_s, 1), "rss": rss_end})
        if not rss_warm:
            rss_warm.update(rss_start)
        dead = [c.name for c in stack.dead()]
        end_wall = time.time()

        # Producers flush on SIGTERM and log what they sent; then history stores the rest.
        sent: dict[str, tuple[int, int]] = {}
        for name in STOP_ORDER:
            stack.component(name).process.stop(timeout_s=30.0)
        for table, (producer, event) in PRODUCERS.items():
            line = stop_log(stack.component(producer), event) or {}
            sent[table] = (int(line.get("sent", -1)), int(line.get("dropped", -1)))
        models_published = log_events(stack.component("trainer"), "model_published")
        sent["model_updates"] = (models_published, 0)
        from_s = start_wall - 600
        want = {table: n for table, (n, _) in sent.items()}
        stored = wait_stored(history, want, from_s, args.drain_timeout_s)
        ids = stored_ids(history, from_s, time.time() + 3600)
        checks = [
            TopicCheck(table, PRODUCERS.get(table, ("trainer", ""))[0], n, d, stored.get(table, 0), ids.get(table, 0))
            for table, (n, d) in sent.items()
        ]
        dead_letters = stored.get("dead_letters", 0)

    outcomes = next(c for c in checks if c.table == "request_outcomes")
    result: dict[str, Any] = {
        "minutes": args.minutes,
        "rate_rps": args.rate,
        "cluster": args.cluster,
        "time_scale": args.time_scale,
        "started_at": datetime.fromtimestamp(start_wall, UTC).isoformat(),
        "ended_at": datetime.fromtimestamp(end_wall, UTC).isoformat(),
        "load_before": load_before,
        "load_after": load_average(),
        "traffic": {**asdict(traffic), "statuses": dict(traffic.statuses)},
        "rss": {
            name: {"start": rss_start.get(name), "warm": rss_warm.get(name), "end": rss_end.get(name)}
            for name in rss_start
        },
        "rss_samples": samples,
        "events": [{**asdict(c), "lost": c.lost, "passed": c.passed} for c in checks],
        "dead_letters_stored": dead_letters,
        "dead_processes": dead,
        "checks": {
            "no process died": not dead,
            "every topic: stored = sent, nothing dropped": all(c.passed for c in checks),
            "outcomes stored = requests sent": outcomes.stored == traffic.sent,
            "no dead letters": dead_letters == 0,
        },
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="traffic duration (default 30)")
    parser.add_argument("--rate", type=float, default=4.0, help="requests per second (default 4)")
    parser.add_argument("--cluster", default="mini-hetero2", help="cluster preset or file (default mini-hetero2)")
    parser.add_argument("--time-scale", type=float, default=1.0, help="emulator wall seconds per emulated second")
    parser.add_argument("--warmup-s", type=float, default=30.0, help="RSS 'after warm-up' is taken this late")
    parser.add_argument("--sample-s", type=float, default=60.0, help="RSS sampling period")
    parser.add_argument("--drain-timeout-s", type=float, default=180.0, help="wait for history to store the rest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None, help="result file (default out/benchmarks/soak-<time>.json)")
    args = parser.parse_args()
    result = soak(args)
    print_report(result)
    out = args.json or REPO / "out" / "benchmarks" / f"soak-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
