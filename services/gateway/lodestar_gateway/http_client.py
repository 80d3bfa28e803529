"""The gateway's HTTP client — the route call, the feedback sender and the upstream request all
use it: aiohttp's ``ClientSession`` behind the few calls the gateway makes, with aiohttp's
errors mapped to the three the exchange acts on.

The session (created on first use, in the running loop) keeps keep-alive connections per
origin: at most ``max_connections`` in all (in use or idle; a request beyond waits for one),
idle ones closed after ``idle_timeout_s`` — below the 5 s keep-alive of uvicorn-based engines
(vLLM, SGLang), so the client, not the server, closes an idle connection. Bodies are passed
through as they arrive (no decompression; ``Accept-Encoding: identity`` is the caller's), no
redirects, no cookies, no proxy from the environment.

Errors:

- :class:`ConnectFailed`: no connection (refused, unreachable, the connect timeout).
- :class:`ConnectionBroken`: the connection closed or failed; ``before_response`` tells
  whether the response head had arrived. A request whose connection closes before any answer
  is sent once more on a new connection (the server may have closed an idle connection as the
  request went out: the keep-alive race); a second such failure is returned.
- :class:`ProtocolError`: the answer is not HTTP/1.1 as aiohttp reads it.

Deadlines other than connect are the caller's (``asyncio.timeout``); a cancelled or abandoned
response closes its connection. Event-loop only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp


class HttpError(Exception):
    """Base of the client's errors."""


class ConnectFailed(HttpError):
    """No connection could be made."""


class ConnectionBroken(HttpError):
    """The connection closed or failed during the exchange."""

    def __init__(self, message: str, before_response: bool) -> None:
        super().__init__(message)
        self.before_response = before_response


class ProtocolError(HttpError):
    """The server's answer is not HTTP/1.1 as the client reads it."""


class Response:
    """Status and headers (case-insensitive names) of one answer; read the body once, with
    :meth:`aiter` or :meth:`read`, then :meth:`close` (which keeps the connection if the body
    was read to its end and the server allows it)."""

    __slots__ = ("_complete", "_response", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self._complete = False
        self.status: int = response.status
        self.headers: Mapping[str, str] = response.headers

    async def aiter(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (chunk framing removed)."""
        try:
            async for piece in self._response.content.iter_any():
                yield piece
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
            raise ConnectionBroken(_describe(exc), before_response=False) from None
        except aiohttp.ClientError as exc:
            raise ProtocolError(_describe(exc)) from None
        self._complete = True

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
        if self._complete:
            self._response.release()
        else:
            self._response.close()


class HttpClient:
    """One connection pool; :meth:`aclose` when done."""

    def __init__(self, connect_timeout_s: float, max_connections: int = 4096, idle_timeout_s: float = 4.0) -> None:
        self.connect_timeout_s = connect_timeout_s
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self._session: aiohttp.ClientSession | None = None

    async def request(
        self, method: str, url: str, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Response:
        """Send one request (``Host`` and ``Content-Length`` are set) and return once the
        response head has arrived. ValueError for a URL that is not http(s)."""
        session = self._session or self._open()
        for attempt in (1, 2):
            try:
                answer = await session.request(method, url, data=body, headers=headers, allow_redirects=False)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                raise ConnectFailed(_describe(exc)) from None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if attempt == 1:
                    continue  # closed unanswered: once more, on a new connection
                raise ConnectionBroken(_describe(exc), before_response=True) from None
            except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError):
                raise ValueError(f"not an http(s) URL: {url!r}") from None
            except aiohttp.ClientConnectionError as exc:
                raise ConnectionBroken(_describe(exc), before_response=True) from None
            except aiohttp.ClientError as exc:
                raise ProtocolError(_describe(exc)) from None
            return Response(answer)
        raise AssertionError("unreachable")

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, limit_per_host=0, keepalive_timeout=self.idle_timeout_s
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent",),
            trust_env=False,
        )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
