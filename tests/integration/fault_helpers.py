"""Helpers of the fault tests (``test_faults.py``): the whole stack on free ports, a steady
load through the gateway whose requests carry tagged ids, Prometheus scrapes, topic reads,
emulator faults. Waits poll with generous deadlines; nothing here measures speed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from lodestar.bus.consume import EventConsumer, LogRewoundError
from lodestar.bus.settings import KafkaSettings
from lodestar.cluster.spec import load_cluster
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.localinfra.stack import Stack, StackConfig
from lodestar.localinfra.stack_ports import StackPorts
from lodestar_schemas.events import Event
from lodestar_schemas.topics import TopicName

MODEL = "llama-3-8b"
PREFIX = "faults."
WAIT_S = 120.0  # generous: the machine is shared


def fault_stack(infra: LocalInfraSettings, env: Mapping[str, str]) -> Stack:
    ports = StackPorts.free(2)
    config = StackConfig(
        cluster=load_cluster("mini-hetero2"),
        ports=ports,
        name=f"faults-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        topic_prefix=PREFIX,
        history=True,
        publish_interval_s=1.0,
        extra_env=dict(env),
    )
    return Stack(config, infra)


def position_jumps(stack: Stack, name: str) -> str:
    """Lines of ``name``'s log (this run) where a consumer skipped records or aiokafka reset a
    position: what to look at when a consumer missed an event."""
    log = stack.component(name).process.run_log_tail(n_bytes=10_000_000)
    lines = [ln for ln in log.splitlines() if "event_offsets_skipped" in ln or "out of range" in ln]
    return "\n".join(lines) or f"(no skip or position reset in {name}'s log)"


def kafka_of(stack: Stack) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=f"127.0.0.1:{stack.config.ports.broker}", topic_prefix=PREFIX)


def url_of(stack: Stack, name: str) -> str:
    url = stack.component(name).url
    assert url is not None
    return url


# --- waiting -------------------------------------------------------------------------------


async def until(what: str, cond: Callable[[], Any], timeout_s: float = WAIT_S, poll_s: float = 0.25) -> Any:
    """``cond()``'s first truthy value (it may be a coroutine function); AssertionError after
    ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = cond()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(poll_s)


# --- metrics -------------------------------------------------------------------------------


async def scrape(url: str) -> dict[str, float]:
    """``name{label="v",…}`` → value of every sample of ``url``/metrics ({} if unreachable)."""
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            text = (await client.get(f"{url}/metrics")).text
    except httpx.HTTPError:
        return {}
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def total(metrics: Mapping[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    out = 0.0
    for key, value in metrics.items():
        base = key.split("{", 1)[0]
        if base == name and all(w in key for w in want):
            out += value
    return out


# --- load ----------------------------------------------------------------------------------


@dataclass
class Reply:
    request_id: str
    tag: str
    http_status: int | None
    ok: bool
    error: dict[str, Any] | None = None
    body: bytes = b""


@dataclass
class Load:
    """Streaming chat requests through the gateway at ``rate_rps`` while :meth:`run` runs;
    each request id is ``{tag}-{n}`` with the tag in force when it was sent."""

    gateway: str
    rate_rps: float = 4.0
    max_tokens: int = 8
    tag: str = "load"
    replies: list[Reply] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _n: int = 0

    async def one(self, client: httpx.AsyncClient, tag: str, stream: bool = True) -> Reply:
        self._n += 1
        rid = f"{tag}-{self._n}-{uuid.uuid4().hex[:6]}"
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"request {rid}: tell me about the tides"}],
            "max_tokens": self.max_tokens,
            "stream": stream,
        }
        try:
            async with client.stream(
                "POST", f"{self.gateway}/v1/chat/completions", json=body, headers={"x-request-id": rid}
            ) as resp:
                raw = await resp.aread()
                reply = Reply(rid, tag, resp.status_code, False, body=raw)
        except httpx.HTTPError as exc:
            reply = Reply(rid, tag, None, False, {"transport": type(exc).__name__})
        if reply.http_status == 200 and stream:
            reply.error = sse_error(raw)
            reply.ok = reply.error is None and raw.endswith(b"data: [DONE]\n\n")
        elif reply.http_status == 200:
            reply.ok = True
        elif reply.http_status is not None:
            with contextlib.suppress(ValueError):
                reply.error = json.loads(raw).get("error")
        self.replies.append(reply)
        return reply

    async def run(self) -> None:
        """Send until :meth:`stop`; then wait for every answer."""
        async with httpx.AsyncClient(timeout=httpx.Timeout(120.0)) as client:
            tasks: set[asyncio.Task[Reply]] = set()
            start, k = time.monotonic(), 0
            while not self._stop.is_set():
                task = asyncio.create_task(self.one(client, self.tag))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                k += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), max(0.0, start + k / self.rate_rps - time.monotonic()))
            if tasks:
                await asyncio.gather(*tasks)

    def stop(self) -> None:
        self._stop.set()

    def of(self, tag: str) -> list[Reply]:
        return [r for r in self.replies if r.tag == tag]

    @staticmethod
    def summary(replies: list[Reply]) -> dict[str, int]:
        c = Counter("ok" if r.ok else str(r.http_status) for r in replies)
        return {"sent": len(replies), **c}


def sse_error(raw: bytes) -> dict[str, Any] | None:
    """The ``error`` object of the first SSE error event in ``raw``, if any."""
    for event in raw.decode(errors="replace").split("\n\n"):
        data = event.removeprefix("data: ")
        if data.startswith("{") and '"error"' in data:
            with contextlib.suppress(ValueError):
                err: dict[str, Any] = json.loads(data)["error"]
                return err
    return None


# --- topics --------------------------------------------------------------------------------


async def read_topic(
    kafka: KafkaSettings, topic: TopicName, done: Callable[[list[Event]], bool], timeout_s: float = WAIT_S
) -> list[Event]:
    """Events of ``topic`` from its beginning until ``done(events)`` (AssertionError after
    ``timeout_s``); a fresh consumer each time (the broker may have been replaced)."""
    deadline = time.monotonic() + timeout_s
    while True:
        reader = EventConsumer(kafka, [topic], group_id=None, auto_offset_reset="earliest")
        events: list[Event] = []
        try:
            await reader.start()
            idle_polls = 0
            while time.monotonic() < deadline:
                batch = await reader.poll(timeout_ms=300)
                events.extend(r.event for r in batch)
                idle_polls = 0 if batch else idle_polls + 1
                if idle_polls >= 2 and done(events):
                    return events
        except LogRewoundError:
            continue
        finally:
            await reader.stop()
        raise AssertionError(f"timed out reading {topic.value}: {len(events)} events, condition not met")


# --- the emulated fleet --------------------------------------------------------------------


async def fault(instance_url: str, spec: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        r = await client.post(f"{instance_url}/admin/fault", json=spec)
        r.raise_for_status()
        status: dict[str, Any] = r.json()
        return status


async def restore(instance_url: str) -> None:
    async with httpx.AsyncClient(timeout=10.0) as client:
        (await client.delete(f"{instance_url}/admin/fault")).raise_for_status()


async def get_json(url: str) -> dict[str, Any] | None:
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            r = await client.get(url)
    except httpx.HTTPError:
        return None
    if r.status_code != 200:
        return None
    body: dict[str, Any] = r.json()
    return body
