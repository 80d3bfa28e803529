"""ASGI responses of admitted requests: write tokens as the driver delivers them.

Both kinds watch the connection while they wait (an ``http.disconnect`` closes the request's
channel), and always hand the request back through ``release`` (which aborts it in the engine
if it did not finish). A channel closed by a fault (drop, go-away) or shutdown ends the
response without completing it, so the server closes the connection: a stream stops mid-way
(the chunked body never terminates); a non-streamed request gets its status line and headers,
then the connection closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from lodestar.emulator.clock import VirtualClock
from lodestar.emulator.lag import LagMonitor
from lodestar.emulator.render import StreamRenderer
from lodestar.emulator.stream import CloseReason, RequestState

_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


@dataclass(frozen=True)
class DeliveryContext:
    clock: VirtualClock
    lag: LagMonitor
    release: Callable[[RequestState], None]

    def observe_delivery(self, state: RequestState) -> None:
        if state.last_token_s is not None:
            loop = asyncio.get_running_loop()
            self.lag.observe_delivery(loop.time() - self.clock.wall_s(state.last_token_s))


async def _watch_disconnect(receive: Receive, state: RequestState) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            state.close(CloseReason.CLIENT_GONE)
            return


class _Delivery(Response):
    def __init__(self, state: RequestState, ctx: DeliveryContext) -> None:
        self.state = state
        self.ctx = ctx
        self.status_code = 200
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, self.state))
        try:
            await self._deliver(send)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            self.ctx.release(self.state)

    async def _deliver(self, send: Send) -> None:
        raise NotImplementedError


class TokenStreamResponse(_Delivery):
    """``text/event-stream``: one chunk per token, written when its engine step ends."""

    def __init__(
        self,
        state: RequestState,
        ctx: DeliveryContext,
        renderer: StreamRenderer,
        cached_tokens: Callable[[RequestState], int | None],
    ) -> None:
        super().__init__(state, ctx)
        self.renderer = renderer
        self.cached_tokens = cached_tokens

    async def _deliver(self, send: Send) -> None:
        state, renderer = self.state, self.renderer
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        sent = 0
        while True:
            if state.closed is None:
                stop = state.tokens if state.drop_after is None else min(state.tokens, state.drop_after)
                if stop > sent:
                    body = renderer.tokens(sent, stop)
                    sent = stop
                    last = sent >= renderer.max_tokens
                    if last:
                        body += renderer.tail(self.cached_tokens(state))
                    await send({"type": "http.response.body", "body": body, "more_body": not last})
                    self.ctx.observe_delivery(state)
                    if last:
                        return
                if state.drop_after is not None and sent >= state.drop_after:
                    state.close(CloseReason.DROPPED)
            if state.closed is not None:
                return  # incomplete body: the server closes the connection
            await state.wait()


class WholeResponse(_Delivery):
    """``application/json``, written when the request finishes; ``body`` renders it."""

    def __init__(self, state: RequestState, ctx: DeliveryContext, body: Callable[[RequestState], bytes]) -> None:
        super().__init__(state, ctx)
        self.body_of = body

    async def _deliver(self, send: Send) -> None:
        state = self.state
        while state.finished is None and state.closed is None:
            await state.wait()
        if state.closed is not None:
            if state.closed is not CloseReason.CLIENT_GONE:
                await send({"type": "http.response.start", "status": 200, "headers": []})
            return
        body = self.body_of(state)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
        self.ctx.observe_delivery(state)
