"""The HTTP client of the gateway (route call, feedback sender, upstream request) and of the
collector (``/metrics`` and ``/v1/models`` scrapes): HTTP/1.1 keep-alive connections on asyncio
protocols, answers parsed by ``httptools`` (llhttp, the parser uvicorn serves with), errors
reduced to the three the gateway's exchange acts on.

Why not aiohttp (used here before; see the gateway README's "HTTP client" section): on this
path every microsecond is added to the time to first token, and its client costs ~0.45 ms per
request more than a protocol that writes the request in one call and hands the parser's body
callbacks straight to the reader (``benchmarks/proxy_floor.py``: a bare uvicorn proxy adds
0.84 ms to TTFT P50 with aiohttp's ``ClientSession``, 0.38 ms with this client; vllm-router
0.63 ms).
What is ours is only the connection handling below; HTTP parsing is llhttp's.

- Connections per origin (scheme, host, port), reused last-in first-out; at most
  ``max_connections`` in all (in use or idle: a request beyond waits for one; an idle
  connection of another origin is closed to make room); an idle one is dropped when the server
  closed it or after ``idle_timeout_s`` — below the 5 s keep-alive of uvicorn-based engines
  (vLLM, SGLang), so the client, not the server, closes an idle connection.
- One write per request (head and body); ``Host`` and ``Content-Length`` set here.
- Bodies are passed through as they arrive (no decompression: ``Accept-Encoding: identity``
  is the caller's), framed by ``Transfer-Encoding: chunked``, ``Content-Length`` or the end
  of the connection; informational (1xx) heads are skipped; no redirects, no cookies, no proxy.
- Backpressure: reading pauses while more than 256 KiB wait to be consumed.

Errors:

- :class:`ConnectFailed`: no connection (refused, unreachable; :class:`ConnectTimedOut`: the
  connect timeout).
- :class:`ConnectionBroken`: the connection closed or failed; ``before_response`` tells
  whether the response head had arrived. A request whose connection closes before any answer
  is sent once more on a new connection (the server may have closed an idle connection as the
  request went out: the keep-alive race); a second such failure is returned.
- :class:`ProtocolError`: the answer is not HTTP/1.1 as llhttp reads it.

Deadlines other than connect are the caller's (``asyncio.timeout``); a cancelled or abandoned
response closes its connection. Event-loop only.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

_HIGH_WATER = 1 << 18

Origin = tuple[str, str, int]


class HttpError(Exception):
    """Base of the client's errors."""


class ConnectFailed(HttpError):
    """No connection could be made."""


class ConnectTimedOut(ConnectFailed):
    """No connection within the connect timeout."""


class ConnectionBroken(HttpError):
    """The connection closed or failed during the exchange."""

    def __init__(self, message: str, before_response: bool) -> None:
        super().__init__(message)
        self.before_response = before_response


class ProtocolError(HttpError):
    """The server's answer is not HTTP/1.1 as the client reads it."""


@functools.lru_cache(maxsize=4096)
def split_url(url: str) -> tuple[Origin, str]:
    """``(scheme, host, port)`` and the request target (path and query) of an http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not target.isascii():
        raise ValueError(f"not an ASCII request target: {url!r}")
    return (parts.scheme, parts.hostname, port), target


class Headers(Mapping[str, str]):
    """Response headers, names case-insensitive (a repeated header: its values joined by ``, ``)."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, str]) -> None:
        self._items = items  # lower-case names

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the answer being read on it (one at a time)."""

    def __init__(self, origin: Origin, pool: _Pool) -> None:
        self.origin = origin
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.busy = False
        self.counted = True  # in the pool's count of open connections
        self._parser = httptools.HttpResponseParser(self)
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head = False  # the (final) response head arrived
        self.complete = False  # the whole answer arrived
        self.got_bytes = False
        self.error: HttpError | None = None
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self._paused = False
        self._skip = False  # an informational (1xx) answer is being read
        self._waiter: asyncio.Future[None] | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete:
            self._close()  # bytes nobody asked for: the connection cannot be trusted
            return
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"{type(exc).__name__}: {exc}"))

    def eof_received(self) -> bool:
        self._ended("the server closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(f"{type(exc).__name__}: {exc}" if exc is not None else "the connection closed")
        self.closed = True
        self.transport = None
        self.pool.lost(self)

    # --- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self.headers.get(key)
        self.headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            self._skip = True
            self.headers = {}
            return
        self.status = status
        self.head = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._skip:
            self._skip = False
            return
        self.complete = True
        if not self._parser.should_keep_alive():
            self.closed = True  # returned to nobody: closed on release
        self._wake()

    # --- the reader's side -----------------------------------------------------------------

    def _ended(self, why: str) -> None:
        if not self.busy or self.complete or self.error is not None:
            return
        if self.head and self._until_close():
            self.complete = True  # the body was delimited by the end of the connection
            self.closed = True
            self._wake()
            return
        self._fail(ConnectionBroken(why, before_response=not self.head))

    def _until_close(self) -> bool:
        if "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "").lower():
            return False
        return self.status not in (204, 304)

    def _fail(self, error: HttpError) -> None:
        if self.error is None:
            self.error = error
        self._close()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self) -> None:
        """Until the parser's next news (head, body, end or failure)."""
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self) -> bytes:
        """Everything buffered, as one piece."""
        body = self.body
        piece = body.popleft() if len(body) == 1 else b"".join(body)
        body.clear()
        self.buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return piece

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self._reset()
        self.busy = True
        self.transport.write(data)

    def _close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


class _Pool:
    """Idle connections per origin and the count of all open ones."""

    def __init__(self, max_connections: int, idle_timeout_s: float) -> None:
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.idle: dict[Origin, list[_Connection]] = {}
        self.open = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    def checkout(self, origin: Origin) -> _Connection | None:
        """A usable idle connection to ``origin`` (the most recent), else None."""
        stack = self.idle.get(origin)
        if not stack:
            return None
        now = time.monotonic()
        while stack:
            connection = stack.pop()
            if not connection.closed and now - connection.idle_since < self.idle_timeout_s:
                return connection
            self._drop(connection)
        return None

    def has_room(self) -> bool:
        """Whether one more connection may open (an idle one elsewhere is closed if need be)."""
        return self.open < self.max_connections or self._close_one_idle()

    async def wait(self) -> None:
        """Until a connection is released or closed."""
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self.waiters:
                self.waiters.remove(waiter)

    def forget(self, connection: _Connection) -> None:
        """``connection`` no longer counts as open (idempotent)."""
        if connection.counted:
            connection.counted = False
            self.open -= 1
            self._wake_one()

    def release(self, connection: _Connection) -> None:
        """Back to the pool if it can carry another request, else closed."""
        connection.busy = False
        if connection.closed or connection.transport is None:
            connection.abort()
            return
        now = time.monotonic()
        connection.idle_since = now
        stack = self.idle.setdefault(connection.origin, [])
        while stack and now - stack[0].idle_since >= self.idle_timeout_s:
            self._drop(stack.pop(0))
        stack.append(connection)
        self._wake_one()

    def lost(self, connection: _Connection) -> None:
        stack = self.idle.get(connection.origin)
        if stack and connection in stack:
            stack.remove(connection)
        self.forget(connection)

    def _drop(self, connection: _Connection) -> None:
        connection.abort()
        self.forget(connection)  # at once: its connection_lost comes a loop turn later

    def _close_one_idle(self) -> bool:
        for stack in self.idle.values():  # (none to the origin asked for: it would be reused)
            if stack:
                self._drop(stack.pop(0))  # the oldest
                return True
        return False

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close_all(self) -> None:
        for stack in self.idle.values():
            for connection in stack:
                connection.abort()
        self.idle.clear()


class Response:
    """Status and headers (case-insensitive names) of one answer; read the body once, with
    :meth:`aiter` or :meth:`read`, then :meth:`close` (which keeps the connection if the body
    was read to its end and the server allows it)."""

    __slots__ = ("_connection", "_pool", "_released", "headers", "status")

    def __init__(self, connection: _Connection, pool: _Pool) -> None:
        self._connection = connection
        self._pool = pool
        self._released = False
        self.status: int = connection.status
        self.headers: Mapping[str, str] = Headers(connection.headers)

    async def aiter(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (chunk framing removed)."""
        connection = self._connection
        while True:
            if connection.body:
                yield connection.take()
            elif connection.error is not None:
                raise connection.error  # after the head: a ConnectionBroken says before_response=False
            elif connection.complete:
                return
            else:
                await connection.wait()

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body (at most about ``limit`` bytes: reading stops there, and the
        connection is closed on :meth:`close`)."""
        parts: list[bytes] = []
        size = 0
        async for piece in self.aiter():
            parts.append(piece)
            size += len(piece)
            if limit is not None and size >= limit:
                break
        return b"".join(parts)

    def close(self) -> None:
        if self._released:
            return
        self._released = True
        connection = self._connection
        if not (connection.complete and not connection.body and connection.error is None):
            connection.abort()  # unread or broken: the connection cannot carry another request
        self._pool.release(connection)


class HttpClient:
    """One connection pool; :meth:`aclose` when done."""

    def __init__(
        self,
        connect_timeout_s: float,
        max_connections: int = 4096,
        idle_timeout_s: float = 4.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: for ``https`` origins (default: the system's trusted CAs, hostnames checked)."""
        self.connect_timeout_s = connect_timeout_s
        self._pool = _Pool(max_connections, idle_timeout_s)
        self._tls = tls

    async def request(
        self, method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Response:
        """Send one request (``Host`` and ``Content-Length`` are set) and return once the
        response head has arrived. ValueError for a URL that is not http(s) or a header that
        would break the request's framing."""
        if method == "HEAD":
            raise ValueError("HEAD requests are not supported (their answers are framed differently)")
        origin, target = split_url(url)
        data = _request_bytes(method, origin, target, body, headers)
        pool = self._pool
        for attempt in (1, 2):
            connection = await self._connection(origin)
            try:
                connection.send(data)
                while not connection.head and connection.error is None:
                    await connection.wait()
            except BaseException:
                connection.abort()  # cancelled (a deadline): the answer will never be read
                pool.release(connection)
                raise
            error = connection.error
            if error is None:
                return Response(connection, pool)
            pool.release(connection)
            if isinstance(error, ConnectionBroken) and not connection.got_bytes and attempt == 1:
                continue  # closed unanswered: once more, on a new connection
            raise error
        raise AssertionError("unreachable")

    async def _connection(self, origin: Origin) -> _Connection:
        """An idle connection to ``origin``, else a new one, else (pool full) the next free."""
        pool = self._pool
        while True:
            connection = pool.checkout(origin)
            if connection is not None:
                return connection
            if pool.has_room():
                return await self._connect(origin)
            await pool.wait()

    async def _connect(self, origin: Origin) -> _Connection:
        scheme, host, port = origin
        pool = self._pool
        pool.open += 1
        protocol = _Connection(origin, pool)  # counted until forgotten (once, whatever happens)
        loop = asyncio.get_running_loop()
        tls = self._tls_context() if scheme == "https" else None
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                await loop.create_connection(
                    lambda: protocol, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            pool.forget(protocol)
            raise ConnectTimedOut(f"connect timeout ({self.connect_timeout_s:g} s) to {host}:{port}") from None
        except (OSError, ssl.SSLError) as exc:
            pool.forget(protocol)
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            pool.forget(protocol)
            raise
        protocol.busy = True  # until the request is sent (data before it is nobody's)
        return protocol

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    async def aclose(self) -> None:
        self._pool.close_all()


def _request_bytes(method: str, origin: Origin, target: str, body: bytes, headers: Mapping[str, str] | None) -> bytes:
    scheme, host, port = origin
    default = 443 if scheme == "https" else 80
    authority = host if port == default else f"{host}:{port}"
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: {len(body)}\r\n"]
    if headers:
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
                raise ValueError(f"header {name!r} would break the request's framing")
            lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1") + body
