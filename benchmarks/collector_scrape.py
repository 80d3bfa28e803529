"""How many instances one collector process can scrape at a given interval on this machine.

Runs the real :class:`~lodestar_collector.scraper.Scraper` (real HTTP, real parser, real
``InstanceState`` construction; states are counted instead of published) against one of:

- ``--emulate K``: K emulated H100 instances (``lodestar emulate``, a separate process);
- ``--page N [N …]``: N instances answered by a separate process with a captured emulator page
  (``testdata/emulator_h100_loaded.txt``, 32 KB), one keep-alive server, instance ``i`` at the
  URL prefix ``/i``: no engine work behind the page, so this finds where the collector itself
  saturates (achieved rate < 95 % of the schedule).

The collector's cost per scrape is its own process CPU time divided by the scrapes done (the
server's CPU is not counted, but it shares the machine). ``--clients lodestar,httpx`` runs each
client in turn against the same servers: ``lodestar`` is the collector's
(:class:`lodestar.http_client.HttpClient`), ``httpx`` its previous one (``httpx.AsyncClient``,
kept here for the comparison only). Prints one table and the JSON (``--json`` writes it).

Usage::

    .venv/bin/python benchmarks/collector_scrape.py --emulate 8 --seconds 10 --clients lodestar,httpx
    .venv/bin/python benchmarks/collector_scrape.py --page 100 200 400 --seconds 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import REPO, emulator

from lodestar.http_client import HttpClient
from lodestar.localinfra.ports import free_port
from lodestar.localinfra.stack import http_ok
from lodestar.logs import configure_logging
from lodestar_collector.config import InstanceConfig
from lodestar_collector.metrics import CollectorMetrics
from lodestar_collector.scraper import Scraper
from lodestar_schemas import InstanceState

TESTDATA = REPO / "services" / "collector" / "testdata"
MODELS = b'{"data":[{"id":"llama-3-8b","max_model_len":131072}]}'


class _Answer(Protocol):
    status: int

    async def read(self, limit: int | None = None) -> bytes: ...

    def close(self) -> None: ...


class _HttpxAnswer:
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self._response = response

    async def read(self, limit: int | None = None) -> bytes:
        return await self._response.aread()

    def close(self) -> None:
        """The body was read whole: nothing to release."""


class _HttpxClient:
    """``httpx.AsyncClient`` with the collector's client interface (the comparison only)."""

    def __init__(self) -> None:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000, keepalive_expiry=30.0)
        self._client = httpx.AsyncClient(limits=limits, follow_redirects=False)

    async def request(self, method: str, url: str) -> _Answer:
        return _HttpxAnswer(await self._client.request(method, url))

    async def aclose(self) -> None:
        await self._client.aclose()


def _client(name: str) -> Any:
    if name == "lodestar":
        return HttpClient(connect_timeout_s=1.0, max_connections=1000)
    if name == "httpx":
        return _HttpxClient()
    raise SystemExit(f"--clients: unknown client {name!r} (lodestar, httpx)")


async def _run(configs: list[InstanceConfig], client_name: str, interval_s: float, seconds: float) -> dict[str, Any]:
    states: list[InstanceState] = []
    client = _client(client_name)
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
    per_scrape = cpu / max(1, len(states))
    return {
        "client": client_name,
        "instances": len(configs),
        "interval_s": interval_s,
        "seconds": round(wall, 2),
        "scrapes_ok": len(ok),
        "scrapes_failed": len(states) - len(ok),
        "achieved_frac": round(len(states) / expected, 3),
        "cpu_frac_of_one_core": round(cpu / wall, 3),
        "cpu_ms_per_scrape": round(1000 * per_scrape, 3),
        "latency_ms_p50": round(1000 * statistics.median(lat), 2),
        "latency_ms_p99": round(1000 * lat[int(0.99 * (len(lat) - 1))], 2),
        "capacity_at_interval_one_core": int(interval_s / per_scrape) if per_scrape else 0,
    }


@contextmanager
def _emulated(k: int) -> Iterator[list[str]]:
    """K emulated H100 instances, one ``lodestar emulate`` process (the benchmarks' harness)."""
    with tempfile.TemporaryDirectory() as tmp:
        cluster = Path(tmp) / "bench.yaml"
        cluster.write_text(f"name: bench\nmodel: llama-3-8b\ngroups:\n  - hardware: H100-SXM\n    count: {k}\n")
        with emulator(["--cluster", str(cluster)], k, "scrape-emulator") as urls:
            yield urls


def _serve_page(port: int, page: bytes) -> None:
    """Answer every GET on ``port``: ``…/metrics`` with ``page``, anything else with MODELS."""

    def answer(body: bytes) -> bytes:
        return b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)

    metrics, models = answer(page), answer(MODELS)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                writer.write(metrics if head.split(b" ", 2)[1].endswith(b"/metrics") else models)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
        await server.serve_forever()

    asyncio.run(main())


@contextmanager
def _page_server(n: int) -> Iterator[list[str]]:
    port = free_port()
    page = (TESTDATA / "emulator_h100_loaded.txt").read_bytes()
    proc = multiprocessing.get_context("spawn").Process(target=_serve_page, args=(port, page), daemon=True)
    proc.start()
    try:
        urls = [f"http://127.0.0.1:{port}/i{i}" for i in range(n)]
        deadline = time.monotonic() + 60.0
        while not http_ok(f"{urls[0]}/metrics"):
            if time.monotonic() > deadline or not proc.is_alive():
                raise SystemExit("the page server did not answer /metrics within 60 s")
            time.sleep(0.2)
        yield urls
    finally:
        proc.terminate()
        proc.join(10)


def _table(results: list[dict[str, Any]]) -> str:
    cols = ("mode", "client", "instances", "achieved_frac", "cpu_ms_per_scrape", "cpu_frac_of_one_core",
            "latency_ms_p50", "latency_ms_p99", "scrapes_failed", "capacity_at_interval_one_core")  # fmt: skip
    lines = [" | ".join(cols), " | ".join("---" for _ in cols)]
    lines += [" | ".join(str(r[c]) for c in cols) for r in results]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--emulate", type=int, help="K emulated instances")
    parser.add_argument("--page", type=int, nargs="*", default=[], help="N instances serving a captured page")
    parser.add_argument("--clients", default="lodestar", help="comma-separated: lodestar, httpx")
    parser.add_argument("--interval", type=float, default=0.25)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    configure_logging("WARNING")
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    for name in clients:
        _client(name)  # an unknown name fails before anything starts
    results: list[dict[str, Any]] = []

    def measure(mode: str, urls: list[str]) -> None:
        configs = [InstanceConfig(instance_id=f"i{i}", url=u) for i, u in enumerate(urls)]
        for name in clients:
            results.append({"mode": mode, **asyncio.run(_run(configs, name, args.interval, args.seconds))})

    if args.emulate:
        with _emulated(args.emulate) as urls:
            measure("emulate", urls)
    for n in args.page:
        with _page_server(n) as urls:
            measure("page", urls)
    doc = {"cpu_count": os.cpu_count(), "results": results}
    print(_table(results))
    if args.json is not None:
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
