"""A gateway in this test's event loop on a real socket (no broker: outcome events are
collected from the gateway's publish hook), and helpers for emulated instances and for a
router dispatcher embedded in the gateway."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from lodestar.emulator.fleet import EmulatedFleet
from lodestar.localinfra.ports import free_port
from lodestar.policy.contracts import Policy
from lodestar.policy.directory import InstanceDirectory
from lodestar.policy.fleet import FleetState
from lodestar.serving import ApiServer, bind_socket
from lodestar_gateway.api import Health, build_app
from lodestar_gateway.service import Core, build_core
from lodestar_gateway.settings import GatewaySettings
from lodestar_router.dispatch import Dispatcher
from lodestar_router.metrics import RouterMetrics
from lodestar_router.model_updates import ModelStore
from lodestar_router.service import policy_builder
from lodestar_schemas.events import Event, RequestOutcome

MODEL = "llama-3-8b"


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 request off ``reader`` (head, then a ``Content-Length`` body); its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next((int(x.split(b":")[1]) for x in lines if x.lower().startswith(b"content-length")), 0)
    return await reader.readexactly(length)


def static_instances(fleet: EmulatedFleet, **extra: Any) -> list[dict[str, Any]]:
    return [{"instance_id": i.instance_id, "url": i.url, "model": MODEL, **extra} for i in fleet.instances.values()]


def dead_url() -> str:
    """A local port nobody listens on (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class Gateway:
    url: str
    core: Core
    events: list[Event] = field(default_factory=list)

    @property
    def outcomes(self) -> list[RequestOutcome]:
        return [e for e in self.events if isinstance(e, RequestOutcome)]

    async def outcome(self, request_id: str, timeout_s: float = 10.0) -> RequestOutcome:
        """The outcome of ``request_id`` (published when its exchange ends)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [o for o in self.outcomes if o.request_id == request_id]
            if found:
                assert len(found) == 1, found
                return found[0]
            await asyncio.sleep(0.01)
        raise AssertionError(f"no outcome for {request_id}; have {[o.request_id for o in self.outcomes]}")

    async def metrics(self) -> str:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{self.url}/metrics")).text


@asynccontextmanager
async def running_gateway(embedded: Dispatcher | None = None, **settings: Any) -> AsyncIterator[Gateway]:
    """A gateway with ``settings``; with ``embedded``, that router dispatcher in its process."""
    settings.setdefault("router_url", "")
    config = GatewaySettings(**settings)
    events: list[Event] = []

    def publish(event: Event) -> bool:
        events.append(event)
        return True

    core = build_core(config, publish, embedded)
    proxy = core.proxy

    def health() -> Health:
        return Health(
            status="ok",
            instances=len(proxy.fleet),
            healthy_instances=proxy.fleet.healthy_count(time.monotonic()),
            router="none",
            inflight_requests=proxy.inflight_requests,
            pending_events=0,
            pending_feedback=0,
        )

    sock = bind_socket("127.0.0.1", 0, "gateway")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    api = ApiServer(build_app(proxy, health), sock)
    api.start()
    if core.feedback is not None:
        core.feedback.start()
    gateway = Gateway(f"http://127.0.0.1:{api.port}", core, events)
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(200):
                try:
                    if (await client.get(f"{gateway.url}/health")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.02)
        yield gateway
    finally:
        await api.stop()
        if core.feedback is not None:
            await core.feedback.close(0.5)
        await proxy.upstream.aclose()
        await core.router_http.aclose()


def dispatcher_over(
    fleet: EmulatedFleet, events: list[Event], policy: Policy | None = None, model: str = MODEL
) -> Dispatcher:
    """A router dispatcher over ``fleet``'s instances (round-robin unless ``policy``), its
    decision events into ``events``: to embed in :func:`running_gateway`."""
    directory = InstanceDirectory(FleetState(), 2.0, 30.0)
    for inst in static_instances(fleet):
        directory.add_static(inst["instance_id"], inst["url"], model)

    def publish(event: Event) -> bool:
        events.append(event)
        return True

    chosen = policy or policy_builder(0)("round-robin")  # not the gateway's fallback (least-request)
    return Dispatcher(directory, chosen, ModelStore(), RouterMetrics(), publish, defer=None)
