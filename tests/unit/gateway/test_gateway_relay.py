"""relay_stream against a real (raw socket) upstream: the first-token hook runs after the
chunk carrying that token went to the client, with the chunk's arrival time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from gateway_helpers import read_request
from tcp_server import tcp_server

from lodestar.http_client import HttpClient
from lodestar_gateway.relay import relay_stream
from lodestar_gateway.sse import StreamScanner

pytestmark = pytest.mark.timeout(30)

ROLE = b'data: {"choices":[{"delta":{"role":"assistant"}}]}\n\n'
TOKEN = b'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n'
DONE = b"data: [DONE]\n\n"


@asynccontextmanager
async def sse_server(events: list[bytes]) -> AsyncIterator[str]:
    """Answers one request with ``events``, one chunk each, a few milliseconds apart."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        for event in events:
            writer.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.005)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with tcp_server(handle) as url:
        yield url


async def test_the_first_token_hook_runs_after_its_chunk_is_forwarded() -> None:
    seen: list[tuple[str, object]] = []

    async def forward(data: bytes) -> None:
        seen.append(("forward", data))

    def on_first_token(at_s: float) -> None:
        seen.append(("first_token", at_s))

    http = HttpClient(connect_timeout_s=2.0)
    try:
        async with sse_server([ROLE, TOKEN, TOKEN, DONE]) as url:
            response = await http.request("POST", url + "/v1/chat/completions", b"{}")
            scanner = StreamScanner(strip_usage=False)
            before = time.perf_counter()
            loop = asyncio.get_running_loop()
            await relay_stream(forward, response, scanner, loop.time() + 5.0, 5.0, on_first_token)
            response.close()
    finally:
        await http.aclose()
    kinds = [kind for kind, _ in seen]
    assert kinds == ["forward", "forward", "first_token", "forward", "forward"]
    assert seen[1] == ("forward", TOKEN)
    assert seen[2][1] == scanner.first_token_s
    assert scanner.first_token_s is not None and before < scanner.first_token_s
    assert scanner.done and scanner.token_events == 2
