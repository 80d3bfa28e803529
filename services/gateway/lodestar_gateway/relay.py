"""Relaying an instance's answer to the client: the client's side of one exchange
(:class:`Downstream`) and the three ways an answer goes through it.

- :func:`pass_error`: an upstream status other than 200, as the instance sent it (status,
  content type, body up to 1 MiB; what came before a read error or ``idle_timeout_s`` of
  silence is passed on).
- :func:`relay_stream`: a stream, event by event as the instance sent it (see
  :class:`~lodestar_gateway.sse.StreamScanner`), to ``forward``: :meth:`Downstream.part` for
  a client stream (its response starts with the first complete event), an
  :class:`~lodestar_gateway.assemble.Assembler` for a non-streamed client (answered with
  :meth:`Downstream.whole` at the end). Before the first token the deadline is
  ``first_token_at`` (loop time); after it each chunk must come within ``idle_timeout_s``.

Deadlines raise :class:`RelayTimeout` naming the deadline; the client's errors
(:class:`~lodestar.http_client.HttpError`) propagate. The caller turns both into a
:class:`~lodestar_gateway.errors.OpenAIError`, which :meth:`Downstream.error` sends as a
JSON answer before the response started, as an SSE error event and ``[DONE]`` after.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from starlette.types import Message, Send

from lodestar.http_client import HttpError, Response
from lodestar.openai_errors import JSON, OpenAIError
from lodestar_gateway.sse import StreamScanner

_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
_MAX_ERROR_BODY = 1_048_576

Headers = list[tuple[bytes, bytes]]


class RelayTimeout(Exception):
    """A deadline passed: ``first_token_timeout``, ``idle_timeout`` or ``response_timeout``."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class Downstream:
    """The client's response (ASGI ``send``). ``started``: its head was sent; ``done``: its
    last part is going out (a client disconnect after that is the normal end)."""

    def __init__(self, send: Send, extra_headers: Headers) -> None:
        self._send = send
        self.extra_headers = extra_headers
        self.started = False
        self.done = False

    async def whole(self, status: int, content_type: bytes, body: bytes) -> None:
        """A complete answer, with its length."""
        headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *self.extra_headers]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})
        self.started = self.done = True
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    async def part(self, body: bytes) -> None:
        """One part of a stream (its head first, if not sent yet)."""
        if not self.started:
            await self._start_stream()
        await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def end(self) -> None:
        """The end of a stream (its head first, if not sent yet)."""
        if not self.started:
            await self._start_stream()
        self.done = True
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})

    async def error(self, exc: OpenAIError) -> None:
        """``exc`` as a JSON answer, or as the last events of a started stream."""
        if self.started:
            self.done = True
            await self._send({"type": "http.response.body", "body": exc.sse(), "more_body": False})
        else:
            await self.whole(exc.status.value, JSON.encode(), exc.body())

    async def _start_stream(self) -> None:
        start: Message = {"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS + self.extra_headers}
        self.started = True
        await self._send(start)


async def pass_error(down: Downstream, response: Response, idle_timeout_s: float) -> None:
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(idle_timeout_s):
            async for chunk in response.aiter():
                parts.append(chunk)
                size += len(chunk)
                if size >= _MAX_ERROR_BODY:
                    break
    except (TimeoutError, HttpError):
        pass  # pass on what came
    content_type = response.headers.get("content-type", JSON).encode()
    await down.whole(response.status, content_type, b"".join(parts))


async def relay_stream(
    forward: Callable[[bytes], Awaitable[None]],
    response: Response,
    scanner: StreamScanner,
    first_token_at: float,
    idle_timeout_s: float,
    on_first_token: Callable[[float], None],
) -> None:
    """Feed the stream through ``scanner`` (read its results afterwards) and ``forward`` what
    it passes; ``on_first_token(perf_counter_s)`` once, right after the chunk with the first
    token is forwarded (with that chunk's arrival time). Does not
    end the client's response: the caller decides how (:meth:`Downstream.end` or an error)."""
    loop = asyncio.get_running_loop()
    clock = time.perf_counter
    first = False
    try:
        async with asyncio.timeout_at(first_token_at) as deadline:
            async for chunk in response.aiter():
                out = scanner.feed(chunk, clock())
                if out:
                    await forward(out)
                scanner.settle()  # after forwarding: the first token's event is parsed here
                if not first and scanner.first_token_s is not None:
                    # after forwarding: the hook's bookkeeping is not the client's wait, and
                    # its time stamp is the chunk's arrival either way
                    first = True
                    on_first_token(scanner.first_token_s)
                if first:
                    deadline.reschedule(loop.time() + idle_timeout_s)
    except TimeoutError:
        raise RelayTimeout("idle_timeout" if first else "first_token_timeout") from None
