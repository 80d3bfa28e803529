"""The request body, and the open-loop sender against a real HTTP server on 127.0.0.1: what
is sent, how each kind of failure is classified, and that nothing raises."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from tcp_server import tcp_server

from lodestar.bench.client import ClientConfig, error_class, run_sends
from lodestar.bench.payload import BodyOptions, request_body, request_headers
from lodestar.bench.schedule import TimeScale, plan_sends
from lodestar.http_client import ConnectFailed, ConnectionBroken, ConnectTimedOut, HttpError, ProtocolError
from lodestar.localinfra.ports import free_port
from lodestar.workload.request import Prompt, RequestSpec

REQUEST = RequestSpec("r7", arrival_s=0.0, prompt=Prompt(24), output_tokens=5, model="llama-3-8b")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(
            BodyOptions(endpoint="completions"),
            {
                "model": "llama-3-8b",
                "prompt": "P",
                "max_tokens": 5,
                "min_tokens": 5,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            id="completions",
        ),
        pytest.param(
            BodyOptions(endpoint="chat", model="other"),
            {
                "model": "other",
                "messages": [{"role": "user", "content": "P"}],
                "max_tokens": 5,
                "min_tokens": 5,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            id="chat with a model override",
        ),
        pytest.param(
            BodyOptions(exact_length=False),
            {
                "model": "llama-3-8b",
                "prompt": "P",
                "max_tokens": 5,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            id="without min_tokens/ignore_eos",
        ),
    ],
)
def test_request_body(options: BodyOptions, expected: dict[str, Any]) -> None:
    assert request_body(REQUEST, "P", options) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (None, {"content-type": "application/json", "x-request-id": "run1-r7"}),
        ("sk-1", {"content-type": "application/json", "x-request-id": "run1-r7", "authorization": "Bearer sk-1"}),
    ],
)
def test_request_headers(key: str | None, expected: dict[str, str]) -> None:
    assert request_headers(REQUEST, key, "run1") == expected


# --- the sender ---------------------------------------------------------------------------------


def sse_pieces(n: int) -> list[bytes]:
    """A vLLM-style stream of ``n`` tokens, one event per piece."""
    pieces = [b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n']
    pieces += [f'data: {{"choices":[{{"index":0,"delta":{{"content":" w{i}"}}}}]}}\n\n'.encode() for i in range(n)]
    pieces.append(f'data: {{"choices":[],"usage":{{"prompt_tokens":3,"completion_tokens":{n}}}}}\n\n'.encode())
    pieces.append(b"data: [DONE]\n\n")
    return pieces


def _chunk(piece: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(piece), piece)


@dataclass
class Received:
    target: str
    headers: dict[str, str]
    body: bytes


class Engine:
    """A real HTTP/1.1 server on 127.0.0.1 whose answer depends on the request id's last part:
    ``ok`` (an SSE stream of ``max_tokens`` tokens), ``fail500``, ``cut`` (one event, then the
    connection closes mid-stream), ``stall`` (one event, then silence for 5 s), ``unanswered``
    (the connection closes before any answer). Every request is recorded."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.url = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            lines = head.split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.received.append(Received(lines[0].split(" ")[1], headers, body))
            behaviour = headers["x-request-id"].split("-", 1)[1]
            if behaviour == "unanswered":
                return
            if behaviour == "fail500":
                error = b'{"error":{"message":"fault","type":"InternalServerError","code":500}}'
                writer.write(b"HTTP/1.1 500 X\r\nContent-Length: %d\r\n\r\n%s" % (len(error), error))
                await writer.drain()
                continue
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                b"x-lodestar-instance: i3\r\nx-lodestar-decision: router\r\n"
                b"server-timing: route;dur=0.412, gateway;dur=1.305\r\n\r\n"
            )
            if behaviour in ("cut", "stall"):
                writer.write(_chunk(b'data: {"choices":[{"index":0,"text":"a"}]}\n\n'))
                await writer.drain()
                if behaviour == "stall":
                    await asyncio.sleep(5)
                return
            for piece in sse_pieces(json.loads(body)["max_tokens"]):
                writer.write(_chunk(piece))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    engine = Engine()
    async with tcp_server(engine.handle) as engine.url:
        yield engine


def spec(rid: str, t: float, out: int = 4) -> RequestSpec:
    return RequestSpec(rid, arrival_s=t, prompt=Prompt(20), output_tokens=out)


async def test_every_outcome_is_classified_and_nothing_raises(engine: Engine) -> None:
    behaviours = ["ok", "fail500", "refused", "cut", "unanswered", "stall"]
    sends = plan_sends([spec(b, 0.01 * k, 6) for k, b in enumerate(behaviours)], [engine.url], TimeScale(1.0))
    refused = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    sends = [replace(s, url=refused) if s.request.request_id == "refused" else s for s in sends]
    seen: list[str] = []

    class Observer:
        def on_sent(self, send: Any) -> None:
            seen.append("sent")

        def on_done(self, result: Any) -> None:
            seen.append("done")

    results, stats = await run_sends(sends, ClientConfig(api_key="k", timeout_s=0.5), Observer())
    by_id = {r.send.request.request_id: r for r in results}
    ok = by_id["ok"]
    assert (ok.outcome.error, ok.outcome.output_tokens, ok.http_status) == (None, 6, 200)
    assert ok.outcome.ttft_s is not None and ok.outcome.tpot_s is not None and ok.outcome.e2e_s is not None
    assert (ok.served_by, ok.decision, ok.gateway_ms) == ("i3", "router", 1.305)
    assert by_id["fail500"].gateway_ms is None  # its answer had no Server-Timing
    assert (by_id["fail500"].outcome.error, by_id["fail500"].http_status) == ("http_500", 500)
    assert "fault" in (by_id["fail500"].outcome.detail or "")
    assert by_id["refused"].outcome.error == "connect"
    assert (by_id["cut"].outcome.error, by_id["cut"].http_status) == ("incomplete", 200)
    assert by_id["unanswered"].outcome.error == "read_error"
    assert (by_id["stall"].outcome.error, by_id["stall"].outcome.output_tokens) == ("timeout", 1)
    assert seen.count("sent") == seen.count("done") == len(behaviours)
    assert stats.peak_in_flight >= 1 and 0 < stats.wall_s < 3.0  # the stall ended at the 0.5 s timeout, not 5 s


async def test_a_connect_timeout_is_named_apart_from_a_refusal() -> None:
    # a listener that never accepts, its backlog already full: the SYN goes unanswered
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers: list[socket.socket] = []
    with contextlib.suppress(TimeoutError):
        for _ in range(8):
            fillers.append(socket.create_connection(listener.getsockname(), timeout=0.2))
    try:
        sends = plan_sends([spec("ok", 0.0)], [f"http://127.0.0.1:{listener.getsockname()[1]}"], TimeScale(1.0))
        results, _ = await run_sends(sends, ClientConfig(connect_timeout_s=0.2))
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert results[0].outcome.error == "connect_timeout"


async def test_a_url_the_client_cannot_send_to_is_a_bad_url() -> None:
    sends = plan_sends([spec("ok", 0.0)], ["ftp://127.0.0.1:9"], TimeScale(1.0))
    results, _ = await run_sends(sends, ClientConfig())
    assert results[0].outcome.error == "bad_url"


async def test_sends_are_spaced_by_the_time_scale(engine: Engine) -> None:
    sends = plan_sends([spec("ok", 0.0), spec("ok", 0.05)], [engine.url], TimeScale(2.0))
    results, _ = await run_sends(sends, ClientConfig())
    gap = results[1].sent_wall_s - results[0].sent_wall_s
    assert gap >= 0.1 - 0.005  # never early
    assert [r.outcome.error for r in results] == [None, None]


async def test_what_the_server_receives(engine: Engine) -> None:
    sends = plan_sends([spec("ok", 0.0, 3)], [engine.url], TimeScale(1.0))
    config = ClientConfig(body=BodyOptions(endpoint="chat"), api_key="secret", run_id="abc")
    await run_sends(sends, config)
    (request,) = engine.received
    assert request.target == "/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer secret"
    assert request.headers["x-request-id"] == "abc-ok"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.body)
    assert body["messages"][0]["content"] == spec("ok", 0.0).prompt.text()
    assert (body["max_tokens"], body["min_tokens"], body["ignore_eos"], body["stream"]) == (3, 3, True, True)


async def test_connections_are_reused_between_sends(engine: Engine) -> None:
    sends = plan_sends([spec("ok", 0.02 * k) for k in range(5)], [engine.url], TimeScale(1.0))
    results, _ = await run_sends(sends, ClientConfig())
    assert all(r.outcome.error is None for r in results)
    assert len(engine.received) == 5


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectFailed("x"), "connect"),
        (ConnectTimedOut("x"), "connect_timeout"),
        (TimeoutError(), "timeout"),
        (ConnectionBroken("x", before_response=False), "incomplete"),
        (ConnectionBroken("x", before_response=True), "read_error"),
        (ProtocolError("x"), "protocol_error"),
        (HttpError("x"), "http_error"),
    ],
)
def test_error_class(exc: HttpError | TimeoutError, expected: str) -> None:
    assert error_class(exc) == expected
