"""No prompt or completion text leaves the gateway except to the client: not in outcome
events, in what the router is sent (so not in its decision events), in logs or metrics,
unless ``log_text`` turns text logging on (which the last test does, proving that the
capture below would see it). A real router (its API on a socket, its decision events kept)
decides for the gateway."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from gateway_helpers import MODEL, running_gateway, static_instances

from lodestar.bus.settings import KafkaSettings
from lodestar.emulator.fleet import EmulatedFleet
from lodestar.serving import ApiServer, bind_socket
from lodestar_router.api import build_app
from lodestar_router.dispatch import Dispatcher
from lodestar_router.metrics import RouterMetrics
from lodestar_router.model_updates import ModelStore
from lodestar_router.service import RouterService, policy_builder
from lodestar_router.settings import RouterSettings
from lodestar_schemas.events import Event, RouteDecision

pytestmark = pytest.mark.timeout(60)

SENTINEL = "zqxsentinelwordzqx"
MSGS = [{"role": "user", "content": f"Please repeat {SENTINEL} {SENTINEL} back to me."}]
REQUESTS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/chat/completions", {"model": MODEL, "messages": MSGS, "max_tokens": 4}),
    ("/v1/chat/completions", {"model": MODEL, "messages": MSGS, "max_tokens": 4, "stream": True}),
    ("/v1/completions", {"model": MODEL, "prompt": f"{SENTINEL} once", "max_tokens": 4}),
    ("/v1/completions", {"model": MODEL, "prompt": f"a {SENTINEL} b", "max_tokens": 4, "stream": True}),
    # refused by the gateway, by the instance (context too long), and by the fleet (unknown model)
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": 5, "content": SENTINEL}]}),
    ("/v1/completions", {"model": MODEL, "prompt": SENTINEL, "max_tokens": SENTINEL}),
    ("/v1/completions", {"model": MODEL, "prompt": SENTINEL + " word" * 9000, "max_tokens": 8}),
    ("/v1/chat/completions", {"model": "no-such-model", "messages": MSGS}),
]


async def _send_all(gw_url: str) -> list[int]:
    statuses = []
    async with httpx.AsyncClient(timeout=30) as client:
        for path, body in REQUESTS:
            r = await client.post(gw_url + path, json=body, headers={"x-tenant-id": "t1"})
            statuses.append(r.status_code)
    return statuses


class Router:
    def __init__(self, url: str, decisions: list[Event]) -> None:
        self.url, self.decisions = url, decisions


@pytest.fixture
async def router(emulated: EmulatedFleet) -> AsyncIterator[Router]:
    """A router over the emulated instances whose decision events are kept in a list."""
    settings = RouterSettings(instances=static_instances(emulated, max_model_len=8192), json_logs=False)
    service = RouterService.build(settings, KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    decisions: list[Event] = []

    def keep(event: Event) -> bool:
        decisions.append(event)
        return True

    dispatcher = Dispatcher(service.directory, policy_builder(0)("least-request"), ModelStore(), RouterMetrics(), keep)
    sock = bind_socket("127.0.0.1", 0, "router")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server = ApiServer(build_app(dispatcher, service.metrics, service.health), sock)
    server.start()
    try:
        yield Router(f"http://127.0.0.1:{server.port}", decisions)
    finally:
        await server.stop()


async def _emitted(emulated: EmulatedFleet, router: Router, capfd: pytest.CaptureFixture[str],
                   caplog: pytest.LogCaptureFixture, **settings: Any) -> tuple[str, str]:  # fmt: skip
    """What the gateway and the router emitted for REQUESTS: (events, logs on any channel and
    metrics)."""
    caplog.set_level(logging.DEBUG)
    instances = static_instances(emulated, max_model_len=8192)
    settings = {"router_url": router.url, "route_timeout_s": 5.0, **settings}
    async with running_gateway(instances=instances, log_level="DEBUG", **settings) as gw:
        statuses = await _send_all(gw.url)
        for request_id in {o.request_id for o in gw.outcomes}:
            await gw.outcome(request_id)
        metrics = await gw.metrics()
    assert statuses == [200, 200, 200, 200, 400, 400, 400, 404], statuses
    assert len(gw.outcomes) == 6  # every request past validation (the unknown model included)
    assert not any(o.fallback for o in gw.outcomes if o.instance_id)  # the router decided
    assert len([d for d in router.decisions if isinstance(d, RouteDecision)]) == 4  # the four served
    out, err = capfd.readouterr()
    events = "\n".join(e.model_dump_json() for e in [*gw.events, *router.decisions])
    return events, "\n".join([out, err, caplog.text, metrics])


async def test_no_text_in_events_logs_or_metrics(
    emulated: EmulatedFleet, router: Router, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    events, logs = await _emitted(emulated, router, capfd, caplog)
    assert "request_done" in logs and "request_failed" in logs  # logs were captured
    assert SENTINEL not in events and SENTINEL not in logs


async def test_text_logging_is_opt_in(
    emulated: EmulatedFleet, router: Router, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    events, logs = await _emitted(emulated, router, capfd, caplog, log_text=True)
    assert SENTINEL in logs
    assert SENTINEL not in events  # never on a topic, even then
