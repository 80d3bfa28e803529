"""How many instances one collector process can scrape at a given interval on this machine.

Two modes, both running the real :class:`~lodestar_collector.scraper.Scraper` (real parser,
real ``InstanceState`` construction; states are counted instead of published):

- ``--emulate K``: K emulated H100 instances (`lodestar emulate`, a separate process) over real
  HTTP with keep-alive. The collector's cost per scrape is its own process CPU time divided by
  the scrapes done (the emulator's CPU is not counted, but it shares the machine).
- ``--mock N [N …]``: N instances answered in-process with a captured emulator page
  (``testdata/emulator_h100_loaded.txt``, 32 KB) through ``httpx.MockTransport``: no sockets, so
  this finds where the collector itself saturates (achieved rate < 95 % of the schedule).

Usage::

    python services/collector/scripts/bench_scrape.py --emulate 16 --seconds 10
    python services/collector/scripts/bench_scrape.py --mock 100 200 400 800 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from lodestar.logs import configure_logging
from lodestar_collector.config import InstanceConfig
from lodestar_collector.metrics import CollectorMetrics
from lodestar_collector.scraper import Scraper
from lodestar_schemas import InstanceState

TESTDATA = Path(__file__).resolve().parents[1] / "testdata"


async def _run(
    configs: list[InstanceConfig], client: httpx.AsyncClient, interval_s: float, seconds: float
) -> dict[str, float]:
    states: list[InstanceState] = []
    metrics = CollectorMetrics()
    scraper = Scraper(client, states.append, metrics, interval_s=interval_s, timeout_s=1.0, failure_threshold=3)
    scraper.set_instances(configs)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    scraper.start()
    await asyncio.sleep(seconds)
    await scraper.stop()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    await client.aclose()
    ok = [s for s in states if s.consecutive_failures == 0]
    expected = len(configs) * wall / interval_s
    lat = sorted(s.scrape_latency_s for s in ok) or [0.0]
    return {
        "instances": len(configs),
        "interval_s": interval_s,
        "seconds": round(wall, 2),
        "scrapes_ok": len(ok),
        "scrapes_failed": len(states) - len(ok),
        "achieved_frac": round(len(states) / expected, 3),
        "cpu_frac_of_one_core": round(cpu / wall, 3),
        "cpu_ms_per_scrape": round(1000 * cpu / max(1, len(states)), 3),
        "latency_ms_p50": round(1000 * statistics.median(lat), 2),
        "latency_ms_p99": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2),
        "capacity_at_interval_one_core": int(interval_s / (cpu / max(1, len(states)))),
    }


def _mock_client(text: str) -> httpx.AsyncClient:
    models = b'{"data":[{"id":"llama-3-8b","max_model_len":131072}]}'
    body = text.encode()

    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body if request.url.path == "/metrics" else models)

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


def _free_ports(n: int) -> int:
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base: int = s.getsockname()[1]
        if base + n > 65535:
            continue
        socks: list[socket.socket] = []
        try:
            for k in range(n):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", base + k))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base
    raise RuntimeError("no free port range")


def _emulated(k: int, interval_s: float, seconds: float) -> dict[str, float]:
    base = _free_ports(k)
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Path(tmp) / "bench.yaml"
        cluster.write_text(f"name: bench\nmodel: llama-3-8b\ngroups:\n  - hardware: H100-SXM\n    count: {k}\n")
        exe = Path(sys.executable).with_name("lodestar")
        proc = subprocess.Popen(
            [str(exe), "emulate", "--cluster", str(cluster), "--port", str(base)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        urls = [f"http://127.0.0.1:{base + i}" for i in range(k)]
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if all(httpx.get(f"{u}/health", timeout=1).status_code == 200 for u in urls):
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            configs = [InstanceConfig(instance_id=f"h100-{i}", url=u) for i, u in enumerate(urls)]
            limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
            client = httpx.AsyncClient(limits=limits)
            return asyncio.run(_run(configs, client, interval_s, seconds))
        finally:
            proc.terminate()
            proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emulate", type=int, help="K emulated instances over real HTTP")
    parser.add_argument("--mock", type=int, nargs="*", default=[], help="N in-process instances (one run per N)")
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    configure_logging("WARNING")
    results = []
    if args.emulate:
        results.append({"mode": "emulate", **_emulated(args.emulate, args.interval, args.seconds)})
    text = (TESTDATA / "emulator_h100_loaded.txt").read_text()
    for n in args.mock:
        configs = [InstanceConfig(instance_id=f"i{i}", url=f"http://i{i}") for i in range(n)]
        results.append({"mode": "mock", **asyncio.run(_run(configs, _mock_client(text), args.interval, args.seconds))})
    print(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
