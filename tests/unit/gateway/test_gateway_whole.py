"""Non-streamed clients: the gateway streams upstream (to time the first token) and answers
with the whole response the instance would have sent; upstream failures and deadlines give
OpenAI-style errors. Real emulated instances, plus one scripted engine (a real HTTP server
sending fixed SSE bytes) for stream contents the emulator never sends."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse
from gateway_helpers import MODEL, running_gateway, static_instances

from lodestar.emulator.fleet import EmulatedFleet
from lodestar.serving import ApiServer, bind_socket

pytestmark = pytest.mark.timeout(60)

MSGS = [{"role": "user", "content": "Tell me about the sea, in a few words."}]
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"model": MODEL, "messages": MSGS, "max_tokens": 6},
    "/v1/completions": {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 6},
}


@pytest.mark.parametrize("path", list(BODIES))
async def test_the_whole_answer_is_the_instances_own(emulated: EmulatedFleet, path: str) -> None:
    instance = emulated.instances["a10g-0"]
    only = [i for i in static_instances(emulated) if i["instance_id"] == "a10g-0"]
    body = BODIES[path]
    async with running_gateway(instances=only) as gw, httpx.AsyncClient(timeout=30) as client:
        direct = await client.post(instance.url + path, json=body, headers={"x-request-id": "same-1"})
        via = await client.post(gw.url + path, json=body, headers={"x-request-id": "same-1"})
        assert direct.status_code == via.status_code == 200, via.text
        assert via.headers["content-type"] == "application/json"
        want, got = direct.json(), via.json()
        for key in ("id", "object", "model", "choices"):
            assert got[key] == want[key], key
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            assert got["usage"][key] == want["usage"][key], key
        out = await gw.outcome("same-1")
    assert out.stream is False and out.completion_tokens == 6
    assert out.ttft_s is not None and out.tpot_s is not None and 0 < out.ttft_s < out.e2e_s


async def test_an_instance_error_status_is_passed_through_for_whole_answers(emulated: EmulatedFleet) -> None:
    for instance in emulated.instances.values():
        instance.faults.fail(1.0)
    async with running_gateway(instances=static_instances(emulated)) as gw, httpx.AsyncClient() as client:
        r = await client.post(gw.url + "/v1/chat/completions", json=BODIES["/v1/chat/completions"])
        assert r.status_code == 500
        assert "injected fault" in r.json()["error"]["message"]
        out = await gw.outcome(r.headers["x-request-id"])
    assert (out.status, out.http_status, out.error_class) == ("error", 500, "upstream_500")


async def test_a_stream_broken_midway_is_a_502_for_whole_answers(emulated: EmulatedFleet) -> None:
    for instance in emulated.instances.values():
        instance.faults.drop_streams(1.0)
    body = {**BODIES["/v1/chat/completions"], "max_tokens": 50}
    async with running_gateway(instances=static_instances(emulated)) as gw, httpx.AsyncClient() as client:
        r = await client.post(gw.url + "/v1/chat/completions", json=body)
        assert r.status_code == 502 and r.headers["content-type"] == "application/json"
        assert r.json()["error"]["type"] == "BadGatewayError"
        out = await gw.outcome(r.headers["x-request-id"])
    assert (out.status, out.error_class) == ("error", "upstream_disconnected")


@pytest.mark.parametrize(
    ("settings", "deadline"),
    [
        ({"response_timeout_s": 0.3}, "response_timeout"),  # shorter than the first-token deadline
        ({"first_token_timeout_s": 0.3}, "first_token_timeout"),
    ],
)
async def test_deadlines_of_whole_answers_are_504(
    emulated: EmulatedFleet, settings: dict[str, float], deadline: str
) -> None:
    for instance in emulated.instances.values():
        instance.faults.stall(3.0)
    async with (
        running_gateway(instances=static_instances(emulated), **settings) as gw,
        httpx.AsyncClient() as client,
    ):
        r = await client.post(gw.url + "/v1/completions", json=BODIES["/v1/completions"])
        assert r.status_code == 504 and deadline in r.json()["error"]["message"]
        out = await gw.outcome(r.headers["x-request-id"])
    assert out.error_class == deadline
    assert gw.core.proxy.fleet.ejected_ids(time.monotonic()) == [out.instance_id]  # it served nobody


async def test_the_response_deadline_also_bounds_a_slow_stream(emulated: EmulatedFleet) -> None:
    """Tokens keep coming (no idle or first-token deadline passes), but not all in time."""
    for instance in emulated.instances.values():
        instance.faults.slow_down(4.0)  # first token within ~0.2 s, 400 tokens in ~40 s
    body = {**BODIES["/v1/completions"], "max_tokens": 400}
    async with (
        running_gateway(instances=static_instances(emulated), response_timeout_s=1.5) as gw,
        httpx.AsyncClient() as client,
    ):
        r = await client.post(gw.url + "/v1/completions", json=body)
        assert r.status_code == 504 and "response_timeout" in r.json()["error"]["message"]
        out = await gw.outcome(r.headers["x-request-id"])
    assert out.error_class == "response_timeout" and out.ttft_s is not None
    # a long answer, not a failing instance: the idle deadline would have caught silence
    assert gw.core.proxy.fleet.ejections.counters.ejections == 0


# --- a scripted engine: SSE bytes the emulator never sends ------------------------------------

_ROLE = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"llama-3-8b","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}\n\n'  # noqa: E501
_ERROR = b'data: {"error":{"message":"engine overloaded","type":"ServiceUnavailableError","param":null,"code":503}}\n\n'
_ODD_ERROR = b'data: {"error":{"message":"odd","type":"X","param":null,"code":"weird"}}\n\n'
SCRIPTS = {
    "error": _ROLE + _ERROR + b"data: [DONE]\n\n",
    "odd-error": _ROLE + _ODD_ERROR + b"data: [DONE]\n\n",
    "no-done": _ROLE,
}


@asynccontextmanager
async def scripted_engine(script: bytes) -> AsyncIterator[str]:
    app = FastAPI()

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Response:
        await request.body()

        async def parts() -> AsyncIterator[bytes]:
            yield script

        return StreamingResponse(parts(), media_type="text/event-stream")

    sock = bind_socket("127.0.0.1", 0, "scripted engine")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server = ApiServer(app, sock)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


@pytest.mark.parametrize(
    ("script", "status", "error_class", "fragment"),
    [
        ("error", 503, "upstream_stream_error", "engine overloaded"),
        ("odd-error", 500, "upstream_stream_error", "odd"),
        ("no-done", 502, "upstream_incomplete", "without [DONE]"),
    ],
)
async def test_stream_errors_become_json_errors_for_whole_answers(
    script: str, status: int, error_class: str, fragment: str
) -> None:
    async with scripted_engine(SCRIPTS[script]) as url:
        instances = [{"instance_id": "scripted", "url": url, "model": MODEL}]
        async with running_gateway(instances=instances) as gw, httpx.AsyncClient() as client:
            r = await client.post(gw.url + "/v1/chat/completions", json=BODIES["/v1/chat/completions"])
            assert r.status_code == status and r.headers["content-type"] == "application/json"
            assert fragment in r.json()["error"]["message"]
            out = await gw.outcome(r.headers["x-request-id"])
    assert (out.status, out.http_status, out.error_class) == ("error", status, error_class)
