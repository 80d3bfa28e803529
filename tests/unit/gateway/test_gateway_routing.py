"""Router first, local fallback otherwise: a router that does not answer in time, refuses
connections or answers errors sends the request to the local policy, counted by reason; after
repeated failures the router is skipped for a cool-down, then asked again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from gateway_helpers import MODEL, dead_url, read_request, running_gateway, static_instances
from tcp_server import tcp_server

from lodestar.emulator.fleet import EmulatedFleet
from lodestar.http_client import HttpClient
from lodestar.openai_errors import OpenAIError
from lodestar.plugins import full_registry, resolve_profile
from lodestar.policy.profile_spec import build_policy
from lodestar_gateway.fleet import LocalFleet
from lodestar_gateway.metrics import GatewayMetrics
from lodestar_gateway.routing import RouterClient, Routing
from lodestar_schemas.router_api import RouteRequest

pytestmark = pytest.mark.timeout(60)

REQUEST = RouteRequest(request_id="r-1", model=MODEL, prompt_tokens=40, block_hashes=[1, 2])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def http_server(answer: bytes | None) -> AsyncIterator[tuple[str, list[int]]]:
    """A local HTTP endpoint that answers every request with ``answer`` (raw bytes), or
    never answers (``None``); yields its URL and a one-item list counting connections."""
    connections = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                await reader.readexactly(length)
                if answer is None:
                    await asyncio.sleep(3600)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()


@asynccontextmanager
async def slow_server(answer: bytes, delay_s: float) -> AsyncIterator[str]:
    """A local HTTP endpoint that answers every request with ``answer`` after ``delay_s``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            await asyncio.sleep(delay_s)
            writer.write(answer)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async with tcp_server(handle) as url:
        yield url


@asynccontextmanager
async def client_for_router() -> AsyncIterator[HttpClient]:
    client = HttpClient(connect_timeout_s=1.0)
    try:
        yield client
    finally:
        await client.aclose()


def _response(status: str, body: bytes) -> bytes:
    return f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body


def _routing(url: str, client: HttpClient, clock: Clock | None = None) -> tuple[Routing, GatewayMetrics]:
    fleet = LocalFleet()
    fleet.add_static("h100-0", "http://h100:8000", MODEL)
    metrics = GatewayMetrics()
    router = RouterClient(
        client, url, 0.05, failure_threshold=2, cooldown_s=5.0, metrics=metrics, clock=clock or Clock()
    )
    policy = build_policy(resolve_profile("least-request"), full_registry(), seed=0)
    return Routing(router, fleet, policy, metrics), metrics


def _fallbacks(metrics: GatewayMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value("lodestar_gateway_fallbacks_total", {"reason": reason})
    return value or 0.0


async def test_a_router_that_does_not_answer_in_time_falls_back_to_the_local_policy() -> None:
    async with http_server(None) as (url, _), client_for_router() as client:
        routing, metrics = _routing(url, client)
        route = await routing.route(REQUEST)
    assert (route.instance_id, route.url, route.via_router) == ("h100-0", "http://h100:8000", False)
    assert (route.policy, route.fallback_reason) == ("least-request", "timeout")
    assert _fallbacks(metrics, "timeout") == 1


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (_response("503 Service Unavailable", b'{"error": {"message": "no instance"}}'), "no_instance"),
        (_response("500 Internal Server Error", b"{}"), "http_error"),
        (_response("400 Bad Request", b'{"error": {"message": "prompt_tokens: bad"}}'), "rejected"),
        (_response("200 OK", b'{"decision_id": "r-1"}'), "bad_response"),
    ],
)
async def test_router_errors_fall_back_with_their_reason(answer: bytes, reason: str) -> None:
    async with http_server(answer) as (url, _), client_for_router() as client:
        routing, metrics = _routing(url, client)
        route = await routing.route(REQUEST)
    assert (route.via_router, route.fallback_reason) == (False, reason)
    assert _fallbacks(metrics, reason) == 1


async def test_a_router_answer_is_used_as_given() -> None:
    body = b'{"decision_id": "r-1", "instance_id": "a10g-0", "url": "http://a10g:8000", "policy": "lodestar",' \
           b' "model_version": 3, "explore": true}'  # fmt: skip
    async with http_server(_response("200 OK", body)) as (url, _), client_for_router() as client:
        routing, metrics = _routing(url, client)
        route = await routing.route(REQUEST)
    assert (route.instance_id, route.url, route.policy, route.via_router) == (
        "a10g-0",
        "http://a10g:8000",
        "lodestar",
        True,
    )
    assert (route.explore, route.model_version, route.fallback_reason) == (True, 3, None)
    assert metrics.registry.get_sample_value("lodestar_gateway_router_latency_seconds_count", {"result": "ok"}) == 1


async def test_after_repeated_failures_the_router_is_skipped_then_asked_again() -> None:
    clock = Clock()
    async with http_server(None) as (url, connections), client_for_router() as client:
        routing, metrics = _routing(url, client, clock)
        assert routing.router is not None
        for _ in range(2):
            assert (await routing.route(REQUEST)).fallback_reason == "timeout"
        asked = connections[0]
        assert routing.router.open
        for _ in range(5):
            assert (await routing.route(REQUEST)).fallback_reason == "circuit_open"
        assert connections[0] == asked  # not even connected to
        clock.now += 5.1
        assert not routing.router.open
        assert (await routing.route(REQUEST)).fallback_reason == "timeout"  # asked again
    assert (_fallbacks(metrics, "timeout"), _fallbacks(metrics, "circuit_open")) == (3, 5)


async def test_a_refused_router_connection_falls_back() -> None:
    async with client_for_router() as client:
        routing, _ = _routing(dead_url(), client)
        assert (await routing.route(REQUEST)).fallback_reason == "connect"


async def test_no_local_instance_after_a_router_failure_is_503() -> None:
    async with http_server(None) as (url, _), client_for_router() as client:
        routing, _ = _routing(url, client)
        with pytest.raises(OpenAIError) as info:
            await routing.route(REQUEST, exclude=["h100-0"])
    assert info.value.status.value == 503 and "every instance failed" in info.value.message


async def test_requests_are_served_while_the_router_hangs(emulated: EmulatedFleet) -> None:
    async with http_server(None) as (url, _):
        settings = {"instances": static_instances(emulated), "router_url": url, "route_timeout_s": 0.05}
        async with running_gateway(**settings) as gw, httpx.AsyncClient() as client:
            body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
            answers = [await client.post(gw.url + "/v1/chat/completions", json=body) for _ in range(4)]
            assert [a.status_code for a in answers] == [200] * 4
            outcomes = [await gw.outcome(a.headers["x-request-id"]) for a in answers]
            metrics = await gw.metrics()
    assert all(o.fallback and o.status == "ok" for o in outcomes)
    # three timeouts open the circuit (threshold 3); the fourth request skips the router
    assert 'lodestar_gateway_fallbacks_total{reason="timeout"} 3.0' in metrics
    assert 'lodestar_gateway_fallbacks_total{reason="circuit_open"} 1.0' in metrics


def test_the_route_budget_grows_with_the_prompt() -> None:
    router = RouterClient(HttpClient(connect_timeout_s=1.0), "http://r", 0.05, timeout_per_1k_tokens_s=0.005)
    assert router.budget_s(40) == pytest.approx(0.0502)
    assert router.budget_s(30_000) == pytest.approx(0.2)


@pytest.mark.parametrize(("prompt_tokens", "via_router"), [(40, False), (60_000, True)])
async def test_a_long_prompt_waits_longer_for_the_router(prompt_tokens: int, via_router: bool) -> None:
    body = (
        b'{"decision_id": "r-1", "instance_id": "h100-0", "url": "http://h100:8000", "policy": "lodestar",'
        b' "model_version": 3}'
    )
    request = RouteRequest(request_id="r-1", model=MODEL, prompt_tokens=prompt_tokens, block_hashes=[1, 2])
    async with slow_server(_response("200 OK", body), delay_s=0.15) as url, client_for_router() as client:
        fleet = LocalFleet()
        fleet.add_static("h100-0", "http://h100:8000", MODEL)
        metrics = GatewayMetrics()
        router = RouterClient(client, url, 0.05, metrics=metrics, timeout_per_1k_tokens_s=0.005)
        policy = build_policy(resolve_profile("least-request"), full_registry(), seed=0)
        route = await Routing(router, fleet, policy, metrics).route(request)
    assert route.via_router is via_router
    assert route.fallback_reason == (None if via_router else "timeout")
