"""What the gateway (+ router) adds to time to first token, and how many concurrent streams it
holds, against real processes on this machine.

Setup: ``lodestar emulate`` (one H100-SXM instance serving llama-3-8b), ``lodestar router``
(default ``lodestar`` profile) and ``lodestar gateway``, each its own process, with a local
broker (tansu) so outcome and decision events are really published (``--no-broker``: the
services run without one and keep retrying in the background). Router and gateway know the
instance statically (no collector), so the numbers are the request path alone.

- ``cpu``: ``--cpu-requests`` streamed chat requests (2 output tokens) through the gateway,
  ``--cpu-concurrency`` at a time on keep-alive connections; reported: the gateway's and the
  router's CPU time (``/proc``) per request, less what each spends idle (measured just
  before), and the local fallbacks seen (none, unless the router missed its budget: raise it
  with ``--route-timeout`` on a loaded machine so that runs compare the same work).
- ``ttft``: one request at a time, alternating a direct request to the instance and the same
  request through the gateway (chat, streamed, 2 output tokens, the same ~120-token prompt so
  the instance's prefix cache treats both paths alike). The client is a raw socket (a new
  connection per request, timed from the request write), so client costs are the same on
  both paths. Reported: P50/P90/P99 of each path and of the difference of the percentiles.
- ``streams``: N streams opened through the gateway at ``--ramp-per-s`` per second (0: all at
  once) (``--streams``, several values allowed), each asking for ``--stream-tokens`` tokens; the
  emulator runs ``--time-scale`` times slower than real time so the test measures concurrency,
  not token throughput (streams beyond the engine's batch wait in its queue, connections open).
  A stream counts as served when it ends with ``data: [DONE]`` and carries no error event;
  ``peak_inflight`` is the gateway's own count (``/health``), polled every 0.25 s;
  ``gateway_cpu_us_per_token`` its CPU time over the test per token served.

Usage::

    python services/gateway/scripts/bench_overhead.py --requests 400 --streams 1000,2000
    python services/gateway/scripts/bench_overhead.py --requests 400 --route-timeout 1 --streams ''
    python services/gateway/scripts/bench_overhead.py --json out.json --no-broker
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np

from lodestar.localinfra.broker import broker_process, start_broker
from lodestar.localinfra.ports import free_port
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings

MODEL = "llama-3-8b"
PROMPT = "Summarise the following notes for the weekly operations review. " * 12
TOKEN = b'"delta":{"content":"'
T = TypeVar("T")


def _lodestar() -> list[str]:
    exe = Path(sys.executable).with_name("lodestar")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from lodestar.cli.app import main; main()"]


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def _process(
    infra: LocalInfraSettings, kind: str, argv: list[str], ready_url: str, env: dict[str, str]
) -> Iterator[int]:
    proc = ManagedProcess(
        name=f"bench-{kind}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        argv=argv,
        run_dir=infra.run_dir,
        log_dir=infra.log_dir,
        env=env,
    )
    pid = proc.start(ready=lambda: _ok(ready_url), timeout_s=60.0)
    try:
        yield pid
    finally:
        proc.stop()


def _body(max_tokens: int, nonce: str = "") -> bytes:
    messages = [{"role": "user", "content": PROMPT + nonce}]
    return json.dumps({"model": MODEL, "messages": messages, "max_tokens": max_tokens, "stream": True}).encode()


def _request(port: int, body: bytes) -> bytes:
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def _one_ttft(port: int, body: bytes) -> float:
    """Seconds from writing the request to reading the first content token."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_request(port, body))
        t0 = time.perf_counter()
        seen = b""
        first: float | None = None
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if first is None and TOKEN in data:
                first = time.perf_counter()
            seen = (seen + data)[-8192:]
        if first is None or b"[DONE]" not in seen:
            raise RuntimeError(f"no token from port {port}: {seen[:300]!r}")
        return first - t0
    finally:
        writer.close()


async def bench_ttft(direct_port: int, gateway_port: int, n: int) -> dict[str, object]:
    body = _body(2)
    for _ in range(20):  # warm-up: connections, caches, JIT-free but allocator-warm
        await _one_ttft(direct_port, body)
        await _one_ttft(gateway_port, body)
    direct, gateway = [], []
    for _ in range(n):
        direct.append(await _one_ttft(direct_port, body))
        gateway.append(await _one_ttft(gateway_port, body))
    d, g = np.array(direct) * 1e3, np.array(gateway) * 1e3
    qs = (50, 90, 99)
    out: dict[str, object] = {"requests_per_path": n, "load_avg_1m": os.getloadavg()[0]}
    for q in qs:
        out[f"direct_p{q}_ms"] = float(np.percentile(d, q))
        out[f"gateway_p{q}_ms"] = float(np.percentile(g, q))
        out[f"added_p{q}_ms"] = float(np.percentile(g, q) - np.percentile(d, q))
    return out


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fallbacks(metrics_text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in metrics_text.splitlines():
        if line.startswith("lodestar_gateway_fallbacks_total{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('"')[1]] = int(float(value))
    return out


async def bench_cpu(setup: Setup, n: int, concurrency: int, idle_s: float = 3.0) -> dict[str, object]:
    """CPU the gateway (and the router) spend per request: ``n`` streamed requests through the
    gateway, ``concurrency`` at a time on keep-alive connections, minus what each process
    spends idle (measured over ``idle_s`` just before)."""
    body = _body(2)
    url = f"http://127.0.0.1:{setup.gateway_port}/v1/chat/completions"
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:

        async def one() -> None:
            async with client.stream("POST", url, content=body, headers=headers) as r:
                data = await r.aread()
                if r.status_code != 200 or b"[DONE]" not in data:
                    raise RuntimeError(f"gateway answered {r.status_code}: {data[:300]!r}")

        async def worker(count: int) -> None:
            for _ in range(count):
                await one()

        await asyncio.gather(*(worker(20) for _ in range(concurrency)))  # warm-up
        pids = {"gateway": setup.gateway_pid, "router": setup.router_pid}
        t0, before = time.perf_counter(), {k: cpu_s(p) for k, p in pids.items()}
        await asyncio.sleep(idle_s)
        t1, idle = time.perf_counter(), {k: cpu_s(p) for k, p in pids.items()}
        share, extra = divmod(n, concurrency)
        await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))
        t2, after = time.perf_counter(), {k: cpu_s(p) for k, p in pids.items()}
        metrics = (await client.get(f"http://127.0.0.1:{setup.gateway_port}/metrics")).text
    out: dict[str, object] = {"requests": n, "concurrency": concurrency, "requests_per_s": round(n / (t2 - t1), 1)}
    out["local_fallbacks"] = _fallbacks(metrics)  # decisions not taken by the router (should be 0)
    for k in pids:
        idle_rate = (idle[k] - before[k]) / (t1 - t0)
        out[f"{k}_cpu_ms_per_request"] = round((after[k] - idle[k] - idle_rate * (t2 - t1)) / n * 1e3, 3)
        out[f"{k}_idle_cpu_frac"] = round(idle_rate, 4)
    out["load_avg_1m"] = os.getloadavg()[0]
    return out


async def _one_stream(port: int, body: bytes) -> tuple[bool, str]:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        return False, f"connect: {exc}"
    tail = b""
    try:
        writer.write(_request(port, body))
        status = await reader.readline()
        if b" 200 " not in status:
            return False, status.decode(errors="replace").strip()
        while True:
            data = await reader.read(65536)
            if not data:
                break
            tail = (tail + data)[-4096:]
            if b'{"error"' in data:
                return False, "error event"
        return (b"[DONE]" in tail, "" if b"[DONE]" in tail else "no [DONE]")
    except OSError as exc:
        return False, f"read: {exc}"
    finally:
        writer.close()


async def bench_streams(setup: Setup, n: int, tokens: int, ramp_per_s: float) -> dict[str, object]:
    gateway_port = setup.gateway_port
    peak = 0
    stop = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        async with httpx.AsyncClient(timeout=5.0) as client:
            while not stop.is_set():
                try:
                    health = (await client.get(f"http://127.0.0.1:{gateway_port}/health")).json()
                    peak = max(peak, int(health["inflight_requests"]))
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                await asyncio.sleep(0.25)

    async def opened_at(i: int) -> tuple[bool, str]:
        if ramp_per_s > 0:
            await asyncio.sleep(i / ramp_per_s)
        return await _one_stream(gateway_port, _body(tokens, f" #{i}"))

    watcher = asyncio.create_task(watch())
    t0, cpu0 = time.perf_counter(), cpu_s(setup.gateway_pid)
    results = await asyncio.gather(*(opened_at(i) for i in range(n)))
    elapsed, cpu = time.perf_counter() - t0, cpu_s(setup.gateway_pid) - cpu0
    stop.set()
    await watcher
    failures = [why for ok, why in results if not ok]
    kinds: dict[str, int] = {}
    for why in failures:
        kinds[why[:60]] = kinds.get(why[:60], 0) + 1
    return {
        "streams": n,
        "opened_per_s": ramp_per_s or "all at once",
        "tokens_per_stream": tokens,
        "served": n - len(failures),
        "failed": len(failures),
        "failures": kinds,
        "peak_inflight": peak,
        "seconds": round(elapsed, 2),
        "tokens_per_s": round((n - len(failures)) * tokens / elapsed),
        "gateway_cpu_s": round(cpu, 2),
        "gateway_cpu_us_per_token": round(cpu / max(1, (n - len(failures)) * tokens) * 1e6, 1),
        "load_avg_1m": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400, help="TTFT samples per path (0: skip the TTFT test)")
    ap.add_argument("--cpu-requests", type=int, default=2000, help="requests of the CPU test (0: skip it)")
    ap.add_argument("--cpu-concurrency", type=int, default=8)
    ap.add_argument("--streams", default="1000", help="comma-separated concurrent stream counts ('' to skip)")
    ap.add_argument("--stream-tokens", type=int, default=100)
    ap.add_argument("--ramp-per-s", type=float, default=250.0, help="streams opened per second (0: all at once)")
    ap.add_argument("--time-scale", type=float, default=10.0, help="emulator slow-down for the streams test")
    ap.add_argument(
        "--route-timeout",
        type=float,
        default=None,
        help="the gateway's router budget in seconds (default: the gateway's; raise it on a loaded machine so "
        "that every request is routed by the router and runs compare the same work)",
    )
    ap.add_argument("--no-broker", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    infra = LocalInfraSettings(home=Path(__file__).resolve().parents[3] / ".lodestar")
    env: dict[str, str] = {"LODESTAR_KAFKA_TOPIC_PREFIX": f"bench{uuid.uuid4().hex[:8]}."}
    if args.route_timeout is not None:
        env["LODESTAR_GATEWAY_ROUTE_TIMEOUT_S"] = str(args.route_timeout)
    broker = None
    if args.no_broker:
        env["LODESTAR_KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"  # nobody listens
    else:
        port = free_port()
        broker = (port, start_broker(infra, port=port, name=f"bench-broker-{os.getpid()}"))
        env["LODESTAR_KAFKA_BOOTSTRAP_SERVERS"] = broker[1]
    report: dict[str, object] = {}
    try:
        if args.requests > 0 or args.cpu_requests > 0:

            async def unscaled(setup: Setup) -> dict[str, object]:
                out: dict[str, object] = {}
                if args.cpu_requests > 0:
                    out["cpu"] = await bench_cpu(setup, args.cpu_requests, args.cpu_concurrency)
                    print(json.dumps(out["cpu"]), flush=True)
                if args.requests > 0:
                    out["ttft"] = ttft = await bench_ttft(setup.direct_port, setup.gateway_port, args.requests)
                    async with httpx.AsyncClient() as client:
                        metrics = (await client.get(f"http://127.0.0.1:{setup.gateway_port}/metrics")).text
                    ttft["local_fallbacks_so_far"] = _fallbacks(metrics)
                    print(json.dumps(out["ttft"]), flush=True)
                return out

            report.update(_run(infra, env, 1.0, unscaled))
        counts = [int(x) for x in args.streams.split(",") if x.strip()]
        if counts:

            async def streams(setup: Setup) -> list[dict[str, object]]:
                out = []
                for n in counts:
                    res = await bench_streams(setup, n, args.stream_tokens, args.ramp_per_s)
                    print(json.dumps(res), flush=True)
                    out.append(res)
                return out

            report["streams"] = _run(infra, env, args.time_scale, streams)
    finally:
        if broker is not None:
            broker_process(infra, broker[0], f"bench-broker-{os.getpid()}").stop()
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


@dataclass(frozen=True)
class Setup:
    """The ports of the instance and the gateway; the pids of the gateway and the router."""

    direct_port: int
    gateway_port: int
    gateway_pid: int
    router_pid: int


def _run(
    infra: LocalInfraSettings,
    env: dict[str, str],
    time_scale: float,
    body: Callable[[Setup], Coroutine[Any, Any, T]],
) -> T:
    emu, router, gateway = free_port(), free_port(), free_port()
    instance = {"instance_id": "h100-sxm-0", "url": f"http://127.0.0.1:{emu}", "model": MODEL}
    env = {
        **env,
        "LODESTAR_ROUTER_INSTANCES": json.dumps([instance]),
        "LODESTAR_GATEWAY_INSTANCES": json.dumps([instance]),
        "LODESTAR_GATEWAY_ROUTER_URL": f"http://127.0.0.1:{router}",
        "LODESTAR_EMULATOR_TIME_SCALE": str(time_scale),
        "LODESTAR_EMULATOR_LOG_LEVEL": "WARNING",
    }
    emulate = [*_lodestar(), "emulate", "--hardware", "H100-SXM", "--model", MODEL, "--port", str(emu)]
    router_argv = [*_lodestar(), "router", "--port", str(router)]
    gateway_argv = [*_lodestar(), "gateway", "--port", str(gateway)]
    with (
        _process(infra, "emulate", emulate, f"http://127.0.0.1:{emu}/health", env),
        _process(infra, "router", router_argv, f"http://127.0.0.1:{router}/health", env) as router_pid,
        _process(infra, "gateway", gateway_argv, f"http://127.0.0.1:{gateway}/health", env) as gateway_pid,
    ):
        return asyncio.run(body(Setup(emu, gateway, gateway_pid, router_pid)))


if __name__ == "__main__":
    main()
