"""A first-token deadline missed in a queue is not a failed instance: an emulated instance that
runs one sequence at a time and is slowed down keeps serving the request ahead, and the one
queued behind it times out. The instance served another request's first token after the queued
one was sent, so neither the gateway's directory nor the embedded router's ejects it; a stalled
instance (it serves nobody) still is. Real gateway, real emulated instance on a socket."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import structlog
from gateway_helpers import MODEL, dispatcher_over, running_gateway, static_instances

from lodestar.bus.settings import KafkaSettings
from lodestar.cluster.spec import ClusterSpec, InstanceGroup
from lodestar.emulator.fleet import EmulatedFleet
from lodestar.emulator.settings import EmulatorSettings
from lodestar.policy.directory import InstanceDirectory
from lodestar_gateway.service import GatewayService
from lodestar_gateway.settings import GatewaySettings, StaticInstance
from lodestar_schemas.events import Event

pytestmark = pytest.mark.timeout(60)

CHAT = "/v1/chat/completions"
SLOWDOWN = 40.0  # the first token of a short prompt takes over a second (1.5 s measured)
TIMEOUT_S = 3.0  # the gateway's first-token deadline


@pytest.fixture
async def one_seat() -> AsyncIterator[EmulatedFleet]:
    """One A10G that runs one sequence at a time: a second request waits for the first."""
    cluster = ClusterSpec(
        name="one-seat", model=MODEL, groups=(InstanceGroup(hardware="A10G", engine_args={"max_num_seqs": 1}),)
    )
    fleet = EmulatedFleet.build(cluster.instances(), 0, EmulatorSettings(), structlog.get_logger())
    fleet.start()
    try:
        yield fleet
    finally:
        await fleet.stop()


def _body(max_tokens: int, text: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens, "stream": True}


async def _first_request_then_a_queued_one(gateway_url: str) -> httpx.Response:
    """A long stream starts; 0.2 s later (before its first token, over a second away) a second
    request queues behind it and misses the first-token deadline. Returns the second one's
    response once the first has sent a token."""
    async with httpx.AsyncClient(timeout=30) as client:
        first_token = asyncio.Event()

        async def ahead() -> None:
            async with client.stream("POST", gateway_url + CHAT, json=_body(200, "Tell me a long story.")) as r:
                assert r.status_code == 200
                async for chunk in r.aiter_bytes():  # the request ahead is served all along
                    assert chunk
                    first_token.set()
                    await asyncio.sleep(3600)  # left open until cancelled

        task = asyncio.get_running_loop().create_task(ahead())
        try:
            await asyncio.sleep(0.2)
            queued = await client.post(gateway_url + CHAT, json=_body(2, "And a short one?"))
            assert first_token.is_set()  # the instance served the request ahead meanwhile
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return queued


def _directory_counts(directory: InstanceDirectory) -> tuple[int, int, int]:
    c = directory.ejections
    return c.ejected_count(), c.counters.ejections, c.counters.spared


async def test_a_request_timing_out_in_the_queue_of_a_serving_instance_ejects_nothing(one_seat: EmulatedFleet) -> None:
    (instance,) = one_seat.instances.values()
    instance.faults.slow_down(SLOWDOWN)
    async with running_gateway(instances=static_instances(one_seat), first_token_timeout_s=TIMEOUT_S) as gw:
        queued = await _first_request_then_a_queued_one(gw.url)
        assert queued.status_code == 504 and "first_token_timeout" in queued.json()["error"]["message"]
        assert _directory_counts(gw.core.proxy.fleet) == (0, 0, 1)  # spared, not ejected


async def test_the_embedded_router_spares_it_too(one_seat: EmulatedFleet) -> None:
    (instance,) = one_seat.instances.values()
    instance.faults.slow_down(SLOWDOWN)
    router_events: list[Event] = []
    dispatcher = dispatcher_over(one_seat, router_events)
    async with running_gateway(
        embedded=dispatcher, instances=static_instances(one_seat), first_token_timeout_s=TIMEOUT_S
    ) as gw:
        queued = await _first_request_then_a_queued_one(gw.url)
        assert queued.status_code == 504
        for _ in range(200):  # final feedback is applied on one of the loop's next turns
            if dispatcher.directory.ejections.counters.spared:
                break
            await asyncio.sleep(0.01)
        assert _directory_counts(dispatcher.directory) == (0, 0, 1)
        assert _directory_counts(gw.core.proxy.fleet) == (0, 0, 1)


async def test_a_stalled_instance_serving_nobody_is_still_ejected(one_seat: EmulatedFleet) -> None:
    (instance,) = one_seat.instances.values()
    instance.faults.stall(3.0)
    async with running_gateway(instances=static_instances(one_seat), first_token_timeout_s=0.3) as gw:
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.post(gw.url + CHAT, json=_body(2, "Anyone there?"))
        assert r.status_code == 504
        assert _directory_counts(gw.core.proxy.fleet) == (1, 1, 0)


def test_the_gateway_service_exports_the_spared_timeouts() -> None:
    instances = [StaticInstance(instance_id="i0", url="http://i0:8000", model=MODEL)]
    settings = GatewaySettings(instances=instances, router_url="", json_logs=False)
    service = GatewayService.build(settings, KafkaSettings(bootstrap_servers="127.0.0.1:1"))  # never started
    now = time.monotonic()
    service.fleet.progress("i0", now - 1.0)
    assert service.fleet.report("i0", "first_token_timeout", now, silent_since_s=now - 5.0) is None
    text = service.metrics.render().decode()
    assert re.search(r"^lodestar_gateway_ejections_spared_total 1\.0$", text, re.MULTILINE)
    assert re.search(r"^lodestar_gateway_ejections_total 0\.0$", text, re.MULTILINE)
