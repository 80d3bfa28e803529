"""The collector as users run it: a real process scraping a real emulated fleet (`lodestar emulate`)
and publishing to the real broker; the test reads the instance-state topic.

No assertion depends on wall-clock speed: every wait polls the topic (or the collector's
/health) with a generous deadline, and event counts are compared with what the events' own
timestamps allow, with wide margins.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from lodestar.bus.consume import EventConsumer
from lodestar.bus.settings import KafkaSettings
from lodestar.localinfra.ports import free_port, free_port_block
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar_schemas import InstanceState, TopicName

pytestmark = pytest.mark.integration

INTERVAL_S = 0.25
THRESHOLD = 3
H100, A10G = "h100-sxm-0", "a10g-0"
WAIT_S = 25.0


def _lodestar() -> list[str]:
    exe = Path(sys.executable).with_name("lodestar")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from lodestar.cli.app import main; main()"]


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _process(
    infra: LocalInfraSettings, kind: str, argv: list[str], env: dict[str, str] | None = None
) -> ManagedProcess:
    return ManagedProcess(
        name=f"test-{kind}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        argv=argv,
        run_dir=infra.run_dir,
        log_dir=infra.log_dir,
        env=env,
    )


@dataclass
class Fleet:
    urls: dict[str, str]
    control: str


@pytest.fixture(scope="module")
def fleet(local_infra: LocalInfraSettings) -> Iterator[Fleet]:
    """`lodestar emulate --cluster mini-hetero2` (H100 then A10G) with its control port."""
    base, control = free_port_block(2), free_port()
    urls = {H100: f"http://127.0.0.1:{base}", A10G: f"http://127.0.0.1:{base + 1}"}
    argv = [*_lodestar(), "emulate", "--cluster", "mini-hetero2", "--base-port", str(base)]
    proc = _process(local_infra, "collector-fleet", [*argv, "--admin-port", str(control)])
    proc.start(ready=lambda: all(_ok(f"{u}/health") for u in urls.values()), timeout_s=30.0)
    try:
        yield Fleet(urls, f"http://127.0.0.1:{control}")
    finally:
        proc.stop()


@dataclass
class Topic:
    """Every instance state read so far, in topic order (one partition)."""

    states: list[InstanceState] = field(default_factory=list)

    def of(self, instance_id: str) -> list[InstanceState]:
        return [s for s in self.states if s.instance_id == instance_id]

    async def until(self, what: str, cond: Callable[[], bool], timeout_s: float = WAIT_S) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    if cond():
                        return
                    await asyncio.sleep(0.05)
        except TimeoutError:
            tail = [(s.instance_id, s.healthy, s.consecutive_failures, s.num_running) for s in self.states[-8:]]
            raise AssertionError(f"timed out waiting for {what}; last states: {tail}") from None


@pytest.fixture
async def topic(topics: KafkaSettings) -> AsyncIterator[Topic]:
    consumer = EventConsumer(topics, [TopicName.INSTANCE_STATE], group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    seen = Topic()

    async def read() -> None:
        while True:
            for received in await consumer.poll(timeout_ms=100):
                assert isinstance(received.event, InstanceState)
                seen.states.append(received.event)

    task = asyncio.create_task(read())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


def _write_instances(path: Path, fleet: Fleet, ids: list[str]) -> None:
    hardware = {H100: "H100-SXM", A10G: "A10G"}
    body = "".join(f"  - instance_id: {i}\n    url: {fleet.urls[i]}\n    hardware: {hardware[i]}\n" for i in ids)
    partial = path.with_suffix(".partial")
    partial.write_text("instances:\n" + body)
    partial.replace(path)  # atomic, as editors and config management do


async def _stream(client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int) -> None:
    body = {"model": "llama-3-8b", "prompt": prompt, "max_tokens": max_tokens, "stream": True}
    async with client.stream("POST", f"{url}/v1/completions", json=body) as response:
        async for _ in response.aiter_bytes():
            pass


async def _health(url: str) -> dict[str, object]:
    async with httpx.AsyncClient(timeout=2.0) as client:
        data: dict[str, object] = (await client.get(f"{url}/health")).json()
        return data


async def test_collector_scrapes_a_changing_fleet(
    fleet: Fleet, topic: Topic, topics: KafkaSettings, local_infra: LocalInfraSettings, tmp_path: Path
) -> None:
    instances = tmp_path / "instances.yaml"
    _write_instances(instances, fleet, [H100])
    port = free_port()
    env = {
        "LODESTAR_KAFKA_BOOTSTRAP_SERVERS": topics.bootstrap_servers,
        "LODESTAR_KAFKA_TOPIC_PREFIX": topics.topic_prefix,
        "LODESTAR_COLLECTOR_RELOAD_POLL_S": "0.2",
    }
    argv = [
        sys.executable, "-m", "lodestar_collector", "--instances-file", str(instances), "--port", str(port),
        "--interval", str(INTERVAL_S), "--failure-threshold", str(THRESHOLD), "--timeout", "0.5",
    ]  # fmt: skip
    collector = _process(local_infra, "collector", argv, env)
    api = f"http://127.0.0.1:{port}"
    collector.start(ready=lambda: _ok(f"{api}/health"), timeout_s=30.0)
    try:
        await _scenario(fleet, topic, instances, api)
    finally:
        collector.stop()
    log = collector.log_tail(20_000)
    assert "collector_stopped" in log, log  # SIGTERM: scrapers stopped, buffer flushed, client closed
    assert "Traceback" not in log, log


async def _scenario(fleet: Fleet, topic: Topic, instances: Path, api: str) -> None:
    # 1. The configured instance is scraped, healthy, with /v1/models read; the other is not.
    await topic.until("H100 states", lambda: len(topic.of(H100)) >= 8)
    first = topic.of(H100)[-1]
    assert first.healthy and first.consecutive_failures == 0
    assert (first.model, first.hardware, first.url) == ("llama-3-8b", "H100-SXM", fleet.urls[H100])
    assert first.max_model_len is not None and first.max_model_len > 1000
    assert (first.block_size, first.num_gpu_blocks is not None) == (16, True)
    assert topic.of(A10G) == []

    # Roughly one state per interval: never more than the ticks the states' own timestamps span.
    states = topic.of(H100)
    span_s = (states[-1].ts - states[0].ts).total_seconds()
    assert len(states) - 1 <= span_s / INTERVAL_S + 2
    assert len(states) - 1 >= span_s / INTERVAL_S / 4

    # 2. Load: slow streaming requests sharing a warmed prefix show up as running requests,
    #    KV usage and prefix-cache hits.
    async with httpx.AsyncClient(timeout=60.0) as client:
        shared = "The quick brown fox jumps over the lazy dog. " * 60
        await _stream(client, fleet.urls[H100], shared + "warm-up", 2)
        load = [asyncio.create_task(_stream(client, fleet.urls[H100], f"{shared} q{i}", 2000)) for i in range(4)]
        try:
            await topic.until("running requests on H100", lambda: any(s.num_running >= 2 for s in topic.of(H100)))
            await topic.until("a prefix hit rate", lambda: any((s.prefix_hit_rate or 0) > 0 for s in topic.of(H100)))
        finally:
            for task in load:
                task.cancel()
            await asyncio.gather(*load, return_exceptions=True)
    busy = max(topic.of(H100), key=lambda s: s.num_running)
    assert busy.kv_usage_frac > 0 and busy.healthy
    assert busy.prefix_cache_hits_total is not None and busy.prefix_cache_hits_total > 0

    # 3. An instance added to the file at runtime joins.
    _write_instances(instances, fleet, [H100, A10G])
    await topic.until("A10G joined and healthy", lambda: any(s.healthy for s in topic.of(A10G)))
    a10g = [s for s in topic.of(A10G) if s.healthy][-1]
    assert (a10g.hardware, a10g.model, a10g.url) == ("A10G", "llama-3-8b", fleet.urls[A10G])

    # 4. It goes away (listener closed): failures counted, unhealthy at the threshold, and
    #    healthy again once it is back.
    async with httpx.AsyncClient(timeout=5.0) as client:
        gone = await client.post(f"{fleet.control}/admin/instances/{A10G}/fault", json={"kind": "go_away"})
        assert gone.status_code == 200 and gone.json()["gone"]
        before = len(topic.of(A10G))
        await topic.until("A10G unhealthy", lambda: any(not s.healthy for s in topic.of(A10G)[before:]))
        back = await client.delete(f"{fleet.control}/admin/instances/{A10G}/fault")
        assert back.status_code == 200 and not back.json()["gone"]
    down = topic.of(A10G)[before:]
    first_down = next(i for i, s in enumerate(down) if not s.healthy)
    assert [s.consecutive_failures for s in down[first_down - THRESHOLD + 1 : first_down + 1]] == [1, 2, 3]
    assert all(s.healthy for s in down[first_down - THRESHOLD + 1 : first_down])  # healthy below the threshold
    await topic.until("A10G healthy again", lambda: any(s.healthy for s in topic.of(A10G)[before + first_down + 1 :]))
    recovered = next(s for s in topic.of(A10G)[before + first_down + 1 :] if s.healthy)
    assert recovered.consecutive_failures == 0 and recovered.max_model_len == a10g.max_model_len

    # 5. An instance removed from the file stops being scraped.
    _write_instances(instances, fleet, [A10G])

    async def removed() -> bool:
        detail = (await _health(api))["detail"]
        assert isinstance(detail, list)
        return [d["instance_id"] for d in detail] == [A10G]

    async with asyncio.timeout(WAIT_S):
        while True:
            if await removed():
                break
            await asyncio.sleep(0.1)
    mark = len(topic.of(A10G))
    await topic.until("A10G states after the removal", lambda: len(topic.of(A10G)) >= mark + 4)
    h100_count = len(topic.of(H100))  # all H100 states from before the removal have arrived (FIFO)
    await topic.until("more A10G states", lambda: len(topic.of(A10G)) >= mark + 12)
    assert len(topic.of(H100)) == h100_count

    health = await _health(api)
    assert (health["instances"], health["healthy"]) == (1, 1)
    async with httpx.AsyncClient(timeout=2.0) as client:
        own = (await client.get(f"{api}/metrics")).text
    assert f'lodestar_collector_scrape_failures_total{{instance="{A10G}",reason="connection"}}' in own
    assert 'lodestar_collector_config_reloads_total{outcome="applied"} 2.0' in own
    assert "lodestar_collector_events_dropped_total 0.0" in own
