"""The gateway's HTTP client (llhttp via httptools underneath) against raw sockets (byte-exact answers,
split anywhere) and a real uvicorn server (the emulator): framing, keep-alive reuse, the
keep-alive race, and how each failure is reported to the exchange."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trustme
from gateway_helpers import MODEL, dead_url
from tcp_server import tcp_server

from lodestar.emulator.fleet import EmulatedFleet
from lodestar.http_client import ConnectFailed, ConnectionBroken, HttpClient, ProtocolError

pytestmark = pytest.mark.timeout(30)


@asynccontextmanager
async def raw_server(answers: list[list[bytes]], close_after: bool = False) -> AsyncIterator[tuple[str, list[int]]]:
    """Answers the k-th request on any connection with the pieces ``answers[k]`` (written one by
    one); counts connections. ``close_after``: close the connection after each answer."""
    state = {"next": 0}
    connections = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.lower().split(b"\r\n")
            length = next((int(x.split(b":")[1]) for x in lines if x.startswith(b"content-length")), 0)
            await reader.readexactly(length)
            pieces = answers[min(state["next"], len(answers) - 1)]
            state["next"] += 1
            for piece in pieces:
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.001)
            if close_after:
                break

    async with tcp_server(handle) as url:
        yield url, connections


@asynccontextmanager
async def counting_proxy(target_url: str) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP relay in front of ``target_url`` that counts the connections made through it."""
    host, port = target_url.removeprefix("http://").rsplit(":", 1)
    connections = [0]

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async with tcp_server(handle) as url:
        yield url, connections


@asynccontextmanager
async def client(**options: Any) -> AsyncIterator[HttpClient]:
    """An ``HttpClient`` (2 s connect timeout; ``options`` as its constructor takes them)."""
    http = HttpClient(**{"connect_timeout_s": 2.0, **options})
    try:
        yield http
    finally:
        await http.aclose()


def _split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


CHUNKED = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"b\r\ndata: one\n\n\r\n"
    b"B;ext=1\r\ndata: two\n\n\r\n"
    b"0\r\nx-trailer: t\r\n\r\n"
)


@pytest.mark.parametrize("size", [1, 3, 17, 1000])
async def test_chunked_bodies_are_unframed_however_they_arrive(size: int) -> None:
    async with raw_server([_split(CHUNKED, size)]) as (url, _), client() as http:
        response = await http.request("POST", url + "/x", b"{}")
        assert (response.status, response.headers["content-type"]) == (200, "text/event-stream")
        assert await response.read() == b"data: one\n\ndata: two\n\n"
        response.close()


async def test_keep_alive_connections_are_reused() -> None:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    async with raw_server([[ok]]) as (url, connections), client() as http:
        for _ in range(5):
            response = await http.request("POST", url + "/v1/route", b"{}", {"content-type": "application/json"})
            assert await response.read() == b"ok"
            response.close()
        assert connections[0] == 1


async def test_an_unfinished_body_closes_its_connection() -> None:
    size = 1 << 20  # far more than arrives with the head
    answer = [b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n0123" % size, *_split(b"x" * (size - 4), 1 << 16)]
    async with raw_server([answer]) as (url, connections), client() as http:
        response = await http.request("GET", url)
        response.close()  # body not read: the connection cannot be reused
        response = await http.request("GET", url)
        assert (await response.read(limit=4)).startswith(b"0123")
        response.close()
        assert connections[0] == 2


async def test_a_server_closed_idle_connection_is_replaced() -> None:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    async with raw_server([[ok]], close_after=True) as (url, connections), client() as http:
        for _ in range(3):
            response = await http.request("POST", url, b"{}")
            assert await response.read() == b"ok"
            response.close()
            await asyncio.sleep(0.05)  # the server's FIN arrives while the connection is idle
        assert connections[0] == 3


async def test_a_request_closed_unanswered_is_sent_once_more_on_a_new_connection() -> None:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    # the first connection is closed without an answer (as in the keep-alive race)
    async with raw_server([[], [ok]], close_after=True) as (url, connections), client() as http:
        response = await http.request("POST", url, b"{}")
        assert await response.read() == b"ok"
        response.close()
        assert connections[0] == 2


async def test_close_delimited_bodies_and_informational_heads() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\nbye"
    async with raw_server([[answer]], close_after=True) as (url, _), client() as http:
        response = await http.request("POST", url, b"{}")
        assert response.status == 503 and await response.read() == b"bye"
        response.close()


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"SMTP ready\r\n\r\n", ProtocolError),
        (b"HTTP/1.1 200 OK\r\nbroken header\r\n\r\n", ProtocolError),
        (b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", ProtocolError),
    ],
)
async def test_malformed_answers(answer: bytes, error: type[Exception]) -> None:
    async with raw_server([[answer]]) as (url, _), client() as http:
        with pytest.raises(error):
            await http.request("GET", url)


async def test_broken_bodies_and_refused_connections() -> None:
    partial = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab"
    async with client() as http:
        async with raw_server([[partial]], close_after=True) as (url, _):
            response = await http.request("GET", url)
            with pytest.raises(ConnectionBroken) as info:
                await response.read()
            assert not info.value.before_response
            response.close()
        async with raw_server([[b""]], close_after=True) as (url, _):
            with pytest.raises(ConnectionBroken) as info:
                await http.request("GET", url)
            assert info.value.before_response
        with pytest.raises(ConnectFailed):
            await http.request("GET", dead_url())


async def test_against_a_real_server_with_a_stream(emulated: EmulatedFleet) -> None:
    instance_url = next(iter(emulated.instances.values())).url
    body = b'{"model": "%s", "prompt": "hi", "max_tokens": 5, "stream": true}' % MODEL.encode()
    async with counting_proxy(instance_url) as (url, connections), client() as http:
        for _ in range(2):
            response = await http.request("POST", url + "/v1/completions", body, {"content-type": "application/json"})
            data = b"".join([piece async for piece in response.aiter()])
            response.close()
            assert response.status == 200 and data.endswith(b"data: [DONE]\n\n") and data.count(b'"text"') == 5
        assert connections[0] == 1  # one connection, kept


async def test_other_schemes_are_refused() -> None:
    async with client() as http:
        with pytest.raises(ValueError, match="not an http"):
            await http.request("GET", "ftp://h/x")


async def test_heads_and_headers_that_would_break_framing_are_refused() -> None:
    async with client() as http:
        with pytest.raises(ValueError, match="HEAD"):
            await http.request("HEAD", "http://127.0.0.1:1/")
        for name, value in [("x-a", "1\r\nx-b: 2"), ("x-a\n", "1"), ("x:a", "1")]:
            with pytest.raises(ValueError, match="framing"):
                await http.request("GET", "http://127.0.0.1:1/", headers={name: value})


async def test_the_request_is_one_write_with_host_and_length() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n") + await reader.readexactly(2))
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with client() as http:
            response = await http.request("POST", f"http://127.0.0.1:{port}/v1/x?a=1", b"{}", {"X-Request-Id": "r1"})
            assert response.status == 204 and await response.read() == b""
            response.close()
    finally:
        server.close()
    head = seen[0].decode()
    assert head.startswith("POST /v1/x?a=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{port}\r\n" in head and "Content-Length: 2\r\n" in head and "X-Request-Id: r1\r\n" in head
    assert head.endswith("\r\n\r\n{}")


async def test_a_large_body_passes_through_backpressure_intact() -> None:
    size = 3 << 20  # well past the 256 KiB at which reading pauses
    payload = bytes(range(256)) * (size // 256)
    answer = [b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size, *_split(payload, 1 << 16)]
    async with raw_server([answer]) as (url, connections), client() as http:
        response = await http.request("GET", url)
        await asyncio.sleep(0.3)  # the server writes ahead while nobody reads
        assert await response.read() == payload
        response.close()
        response = await http.request("GET", url)  # read to its end: the connection is kept
        assert len(await response.read()) == size
        response.close()
        assert connections[0] == 1


async def test_idle_connections_past_the_idle_timeout_are_not_reused() -> None:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    async with raw_server([[ok]]) as (url, connections), client(idle_timeout_s=0.1) as http:
        for pause in (0.0, 0.3):
            await asyncio.sleep(pause)
            response = await http.request("GET", url)
            assert await response.read() == b"ok"
            response.close()
        assert connections[0] == 2


async def test_a_full_pool_waits_for_a_connection_and_closes_idle_ones_of_other_origins() -> None:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    slow = [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", b"o", b"k"]
    async with (
        raw_server([slow]) as (url_a, conn_a),
        raw_server([[ok]]) as (url_b, conn_b),
        client(max_connections=1) as http,
    ):
        first = await http.request("GET", url_a)
        second = asyncio.ensure_future(http.request("GET", url_a))
        await asyncio.sleep(0.05)
        assert not second.done()  # the one connection is in use
        assert await first.read() == b"ok"
        first.close()
        response = await asyncio.wait_for(second, 2)
        assert await response.read() == b"ok"
        response.close()
        assert conn_a[0] == 1  # the second request took the first one's connection
        # another origin: the idle connection to the first is closed to make room
        response = await http.request("GET", url_b)
        assert await response.read() == b"ok"
        response.close()
        assert conn_b[0] == 1


async def test_a_cancelled_request_does_not_leave_its_connection_in_the_pool() -> None:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    late = [b"", b"", b"", ok]  # the answer comes after three writes' worth of delay
    async with raw_server([late, [ok]]) as (url, connections), client() as http:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.001):
                await http.request("GET", url)
        response = await http.request("GET", url)
        assert await response.read() == b"ok"
        response.close()
        assert connections[0] == 2


async def test_bytes_on_an_idle_connection_retire_it() -> None:
    ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
    async with raw_server([[ok, b"HTTP/1.1 200 OK\r\n"]]) as (url, connections), client() as http:
        response = await http.request("GET", url)
        assert await response.read() == b"ok"
        response.close()
        await asyncio.sleep(0.05)  # the stray bytes arrive while the connection is idle
        response = await http.request("GET", url)
        assert await response.read() == b"ok"
        response.close()
        assert connections[0] == 2


def test_on_uvloop_the_gateways_event_loop() -> None:
    """The gateway serves on uvloop (its transports are not asyncio's classes)."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        await test_chunked_bodies_are_unframed_however_they_arrive(3)
        await test_keep_alive_connections_are_reused()
        await test_a_large_body_passes_through_backpressure_intact()
        await test_a_request_closed_unanswered_is_sent_once_more_on_a_new_connection()
        await test_broken_bodies_and_refused_connections()

    uvloop.run(scenario())


async def test_https_origins_verify_the_server() -> None:
    ca = trustme.CA()  # a test CA the system does not trust
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                assert b"Host: 127.0.0.1:" in head
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
    try:
        async with client(tls=client_tls) as trusting:
            for _ in range(2):  # the TLS connection is kept and reused like any other
                response = await trusting.request("GET", url)
                assert response.status == 200 and await response.read() == b"secret"
                response.close()
        async with client() as default:  # the system's CAs do not know this certificate
            with pytest.raises(ConnectFailed, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
                await default.request("GET", url)
    finally:
        server.close()
