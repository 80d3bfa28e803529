"""Capacity benchmark: how many concurrent streams one ``lodestar emulate`` process keeps in real
time. Run: ``python -m lodestar.emulator.bench --cluster mini-hetero2 --time-scale 1 --time-scale 4``.

For each (time scale, stream count) it starts the real command as a process, runs that many
closed-loop streaming clients spread over the instances (a raw-socket SSE reader in this
process, much cheaper per token than the emulator), and reads the emulator's own ``/metrics``
over a measurement window: tokens delivered per wall second, how late engine steps were applied
and token chunks written (``lodestar_emulator_{step,delivery}_lag_seconds``; bucket upper
bounds), steps later than the warning threshold, and CPU: the emulator's, the load generator's
and everything else's on the machine (a busy machine explains bad rows). A level is *sustained*
when p99 chunk lag is at most ``--max-p99-lag-ms`` and no step was later than the threshold.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from lodestar import tokenizer
from lodestar.cluster.spec import load_cluster
from lodestar.localinfra.ports import free_port_block
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class LevelResult:
    cluster: str
    time_scale: float
    streams: int
    window_s: float
    tokens_per_s: float
    running_per_instance: float
    emulator_cpu_cores: float
    client_cpu_cores: float
    other_cpu_cores: float
    step_lag_p50_ms: float
    step_lag_p99_ms: float
    chunk_lag_p50_ms: float
    chunk_lag_p99_ms: float
    late_steps: int
    sustained: bool


# --- reading the emulator and the machine ------------------------------------------------------


def _scrape(url: str) -> Samples:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("model_name", "engine")))
            out[(s.name, labels)] = s.value
    return out


def _total(snaps: Sequence[Samples], name: str) -> float:
    return sum(v for snap in snaps for (n, _), v in snap.items() if n == name)


def _quantile_ms(before: Sequence[Samples], after: Sequence[Samples], name: str, q: float) -> float:
    """Upper bound (ms) of the histogram bucket holding quantile ``q`` of the window."""
    counts: dict[float, float] = {}
    for b, a in zip(before, after, strict=True):
        for (n, labels), v in a.items():
            if n == f"{name}_bucket":
                le = float(dict(labels)["le"])
                counts[le] = counts.get(le, 0.0) + v - b.get((n, labels), 0.0)
    total = counts.get(float("inf"), 0.0)
    if total <= 0:
        return 0.0
    return next(le * 1e3 for le in sorted(counts) if counts[le] >= q * total)


def _process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    """CPU seconds spent busy on all cores since boot."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


# --- load --------------------------------------------------------------------------------------


async def _stream(host: str, port: int, payload: bytes) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(payload)
        while True:
            line = await reader.readline()
            if not line or line.startswith(b"data: [DONE]"):
                return
    finally:
        writer.close()


async def _client(k: int, urls: Sequence[str], prompts: Sequence[str], max_tokens: int) -> None:
    host, port = urls[k % len(urls)].removeprefix("http://").rsplit(":", 1)
    rng = random.Random(k)
    await asyncio.sleep(rng.random() * 2.0)  # spread the start
    while True:
        body = json.dumps(
            {"messages": [{"role": "user", "content": rng.choice(prompts)}], "max_tokens": max_tokens, "stream": True}
        ).encode()
        head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        await _stream(host, int(port), head + body)


@dataclass
class _Window:
    before: list[Samples]
    after: list[Samples]
    wall_s: float
    emulator_cpu_s: float
    client_cpu_s: float
    machine_busy_s: float
    running_mean: float


async def _measure(
    urls: Sequence[str],
    pid: int,
    streams: int,
    prompts: Sequence[str],
    max_tokens: int,
    warmup_s: float,
    window_s: float,
) -> _Window:
    clients = [asyncio.create_task(_client(k, urls, prompts, max_tokens)) for k in range(streams)]
    try:
        await asyncio.sleep(warmup_s)
        before = await asyncio.to_thread(lambda: [_scrape(u) for u in urls])
        t0, e0, c0, m0 = time.monotonic(), _process_cpu_s(pid), time.process_time(), _machine_busy_s()
        running: list[float] = []
        for _ in range(5):
            await asyncio.sleep(window_s / 5)
            snap = await asyncio.to_thread(lambda: [_scrape(u) for u in urls])
            running.append(_total(snap, "vllm:num_requests_running") / len(urls))
        after = await asyncio.to_thread(lambda: [_scrape(u) for u in urls])
        t1, e1, c1, m1 = time.monotonic(), _process_cpu_s(pid), time.process_time(), _machine_busy_s()
    finally:
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    return _Window(before, after, t1 - t0, e1 - e0, c1 - c0, m1 - m0, sum(running) / len(running))


def run_level(
    cluster: str,
    time_scale: float,
    streams: int,
    max_tokens: int,
    prompt_tokens: int,
    warmup_s: float,
    window_s: float,
    max_p99_lag_ms: float,
) -> LevelResult:
    n = len(load_cluster(cluster).instances())
    base = free_port_block(n)
    urls = [f"http://127.0.0.1:{base + k}" for k in range(n)]
    infra = LocalInfraSettings()
    proc = ManagedProcess(
        name=f"bench-emulator-{uuid.uuid4().hex[:6]}",
        argv=[
            *(sys.executable, "-c", "import typer; from lodestar.cli.emulate_cmd import emulate; typer.run(emulate)"),
            *("--cluster", cluster, "--port", str(base), "--time-scale", str(time_scale)),
        ],
        run_dir=infra.run_dir,
        log_dir=infra.log_dir,
    )

    def ready() -> bool:
        try:
            return all(httpx.get(f"{u}/health", timeout=1).status_code == 200 for u in urls)
        except httpx.HTTPError:
            return False

    pid = proc.start(ready=ready, timeout_s=60)
    prompts = [tokenizer.synthesize(prompt_tokens, seed=s) for s in range(256)]
    try:
        w = asyncio.run(_measure(urls, pid, streams, prompts, max_tokens, warmup_s, window_s))
    finally:
        proc.stop()
    tokens = _total(w.after, "vllm:generation_tokens_total") - _total(w.before, "vllm:generation_tokens_total")
    late = int(
        _total(w.after, "lodestar_emulator_late_steps_total") - _total(w.before, "lodestar_emulator_late_steps_total")
    )
    chunk_p99 = _quantile_ms(w.before, w.after, "lodestar_emulator_delivery_lag_seconds", 0.99)
    return LevelResult(
        cluster=cluster,
        time_scale=time_scale,
        streams=streams,
        window_s=round(w.wall_s, 2),
        tokens_per_s=round(tokens / w.wall_s, 1),
        running_per_instance=round(w.running_mean, 1),
        emulator_cpu_cores=round(w.emulator_cpu_s / w.wall_s, 2),
        client_cpu_cores=round(w.client_cpu_s / w.wall_s, 2),
        other_cpu_cores=round(max(0.0, w.machine_busy_s - w.emulator_cpu_s - w.client_cpu_s) / w.wall_s, 2),
        step_lag_p50_ms=_quantile_ms(w.before, w.after, "lodestar_emulator_step_lag_seconds", 0.5),
        step_lag_p99_ms=_quantile_ms(w.before, w.after, "lodestar_emulator_step_lag_seconds", 0.99),
        chunk_lag_p50_ms=_quantile_ms(w.before, w.after, "lodestar_emulator_delivery_lag_seconds", 0.5),
        chunk_lag_p99_ms=chunk_p99,
        late_steps=late,
        sustained=chunk_p99 <= max_p99_lag_ms and late == 0,
    )


def main(
    cluster: Annotated[str, typer.Option(help="cluster preset or file")] = "mini-hetero2",
    time_scale: Annotated[list[float] | None, typer.Option(help="time scale to measure (repeat) [1]")] = None,
    streams: Annotated[list[int] | None, typer.Option(help="concurrent streams (repeat) [50 100 200 400]")] = None,
    max_tokens: Annotated[int, typer.Option(help="output tokens per request")] = 128,
    prompt_tokens: Annotated[int, typer.Option(help="prompt tokens per request")] = 128,
    warmup_s: Annotated[float, typer.Option(help="ramp-up before measuring (wall s)")] = 4.0,
    window_s: Annotated[float, typer.Option(help="measurement window (wall s)")] = 10.0,
    max_p99_lag_ms: Annotated[float, typer.Option(help="sustained if p99 chunk lag is at most this")] = 20.0,
    json_path: Annotated[Path | None, typer.Option("--json", help="also write the rows as JSON")] = None,
) -> None:
    """Measure the concurrent streams one emulator process sustains (table, optional JSON)."""
    rows = [
        run_level(cluster, ts, s, max_tokens, prompt_tokens, warmup_s, window_s, max_p99_lag_ms)
        for ts in (time_scale or [1.0])
        for s in (streams or [50, 100, 200, 400])
    ]
    table = Table(title=f"lodestar emulate capacity · {cluster} · {prompt_tokens} in / {max_tokens} out tokens")
    for col in ("scale", "streams", "running/inst", "tok/s (wall)", "CPU emu/client/other", "step lag p50/p99 ms",
                "chunk lag p50/p99 ms", "late steps", "sustained"):  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            f"{r.time_scale:g}",
            str(r.streams),
            f"{r.running_per_instance:g}",
            f"{r.tokens_per_s:,.0f}",
            f"{r.emulator_cpu_cores:.2f} / {r.client_cpu_cores:.2f} / {r.other_cpu_cores:.2f}",
            f"{r.step_lag_p50_ms:g} / {r.step_lag_p99_ms:g}",
            f"{r.chunk_lag_p50_ms:g} / {r.chunk_lag_p99_ms:g}",
            str(r.late_steps),
            "yes" if r.sustained else "NO",
        )
    Console(width=170).print(table)
    if json_path is not None:
        json_path.write_text(json.dumps([asdict(r) for r in rows], indent=2))


if __name__ == "__main__":
    typer.run(main)
