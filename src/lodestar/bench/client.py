"""The open-loop sender: every request leaves at its due time on one
:class:`~lodestar.http_client.HttpClient` (the gateway's own client: HTTP/1.1 keep-alive on
asyncio protocols, llhttp parsing), whether or not earlier ones have answered, and its stream is
timed as it arrives. It shares the machine with the routers it measures, so it is kept cheap
(httpx's ``AsyncClient``, used here before, took over twice the CPU per request).

Timing is client-side on the event loop's monotonic clock, in wall seconds from the run's
start: a request's clock starts just before its HTTP request is issued (so the send lag, how
late that was against the plan, is not part of its latencies), each body chunk is stamped when
it is read. Bodies are rendered ahead, off the loop (:mod:`lodestar.bench.render`). Self-checks
keep the client from silently becoming the bottleneck: the send lag of every request, a ticker
that measures how late the event loop wakes up (a busy loop stamps chunks late, which inflates
TTFT), and peak in-flight requests against the connection limit (above it, requests queued
inside the client).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

from lodestar.bench.payload import BodyOptions
from lodestar.bench.render import AheadRenderer, Rendered
from lodestar.bench.schedule import Send
from lodestar.bench.server_timing import server_timing_ms
from lodestar.bench.sse import SseParser, StreamOutcome, StreamTimer
from lodestar.http_client import (
    ConnectFailed,
    ConnectionBroken,
    ConnectTimedOut,
    HttpClient,
    HttpError,
    ProtocolError,
    Response,
)

_TICK_S = 0.01
# Below uvicorn's (and so vLLM's) 5 s keep-alive timeout: a connection the server is about to
# close is never reused (that race fails a request with a ReadError at the server's whim).
KEEPALIVE_EXPIRY_S = 2.0


@dataclass(frozen=True)
class ClientConfig:
    """``timeout_s``: wall seconds a request may wait for its answer's head, then for each next
    bytes of its body; ``connect_timeout_s``: for a new connection. A request beyond
    ``max_connections`` in flight waits for a free connection."""

    body: BodyOptions = field(default_factory=BodyOptions)
    api_key: str | None = None
    run_id: str = "bench"
    max_connections: int = 1000
    timeout_s: float = 600.0
    connect_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class SendResult:
    """One request's fate in wall seconds from the run's start."""

    send: Send
    sent_wall_s: float
    outcome: StreamOutcome
    http_status: int | None
    served_by: str | None = None  # the gateway's x-lodestar-instance header, when it sent one
    decision: str | None = None  # its x-lodestar-decision: router, explore, heuristic or fallback:<reason>
    gateway_ms: float | None = None  # the gateway's own time before the upstream request (its Server-Timing)

    @property
    def lag_wall_s(self) -> float:
        return max(0.0, self.sent_wall_s - self.send.due_wall_s)


@dataclass(frozen=True)
class RunStats:
    """Client-side health of a run (wall seconds)."""

    wall_s: float
    client_cpu_s: float
    peak_in_flight: int
    max_connections: int
    loop_lag_s: list[float]


class RunObserver(Protocol):
    """Progress hooks (called on the event loop)."""

    def on_sent(self, send: Send) -> None: ...

    def on_done(self, result: SendResult) -> None: ...


class _NoObserver:
    def on_sent(self, send: Send) -> None:
        pass

    def on_done(self, result: SendResult) -> None:
        pass


class _Sender:
    def __init__(self, client: HttpClient, config: ClientConfig, start: float, observer: RunObserver) -> None:
        self.client = client
        self.config = config
        self.start = start
        self.observer = observer
        self.in_flight = 0
        self.peak_in_flight = 0

    def now(self) -> float:
        return asyncio.get_running_loop().time() - self.start

    async def send(self, send: Send, rendered: Rendered) -> SendResult:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        self.observer.on_sent(send)
        sent = self.now()
        timer = StreamTimer(sent)
        status: int | None = None
        outcome: StreamOutcome | None = None
        served_by = decision = None
        gateway_ms: float | None = None
        wait_s = self.config.timeout_s
        try:
            async with asyncio.timeout(wait_s):
                response = await self._request(rendered)
            try:
                timer.on_headers(self.now())
                status = response.status
                served_by = response.headers.get("x-lodestar-instance")
                decision = response.headers.get("x-lodestar-decision")
                gateway_ms = server_timing_ms(response.headers.get("server-timing")).get("gateway")
                if status >= 400:
                    async with asyncio.timeout(wait_s):
                        text = (await response.read(1 << 16)).decode("utf-8", "replace")
                    outcome = timer.finish(self.now(), f"http_{status}", text[:300])
                else:
                    parser = SseParser()
                    chunks = response.aiter()
                    while True:
                        async with asyncio.timeout(wait_s):  # for its next bytes
                            chunk = await anext(chunks, None)
                        if chunk is None:
                            break
                        at = self.now()
                        for event in parser.feed(chunk):
                            timer.on_event(event, at)
                    end = self.now()
                    for event in parser.close():
                        timer.on_event(event, end)
                    outcome = timer.finish(end)
            finally:
                response.close()
        except (HttpError, TimeoutError) as exc:
            outcome = timer.finish(self.now(), error_class(exc), f"{type(exc).__name__}: {exc}"[:300])
        except Exception as exc:  # one request's surprise must not lose the whole run
            outcome = timer.finish(self.now(), "client_error", f"{type(exc).__name__}: {exc}"[:300])
        finally:
            self.in_flight -= 1
        result = SendResult(send, sent, outcome, status, served_by, decision, gateway_ms)
        self.observer.on_done(result)
        return result

    async def _request(self, rendered: Rendered) -> Response:
        try:
            return await self.client.request("POST", rendered.url, rendered.content, rendered.headers)
        except ValueError as exc:  # only a URL (or header) the client cannot send raises it here
            raise UnsendableRequest(str(exc)) from None


class UnsendableRequest(HttpError):
    """The request cannot be sent as given (not an http(s) URL, a header that breaks framing)."""


def error_class(exc: HttpError | TimeoutError) -> str:
    """A short, stable name for a transport failure."""
    if isinstance(exc, ConnectTimedOut):
        return "connect_timeout"
    if isinstance(exc, ConnectFailed):
        return "connect"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionBroken):
        return "read_error" if exc.before_response else "incomplete"
    if isinstance(exc, ProtocolError):
        return "protocol_error"
    if isinstance(exc, UnsendableRequest):
        return "bad_url"
    return "http_error"


async def _ticker(out: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + _TICK_S
        await asyncio.sleep(_TICK_S)
        out.append(max(0.0, loop.time() - due))


async def run_sends(
    sends: Sequence[Send],
    config: ClientConfig,
    observer: RunObserver | None = None,
    render_executor: Executor | None = None,
    render_lookahead: int = 64,
) -> tuple[list[SendResult], RunStats]:
    """Send every request at ``due_wall_s`` after the start (open loop) and wait for all of
    them. Results come back in ``sends`` order; never raises for a failed request.
    ``render_executor`` renders bodies ``render_lookahead`` sends ahead (see
    :mod:`lodestar.bench.render`; inline if None, so ``render_lookahead >= len(sends)`` renders
    everything before the clock starts)."""
    obs = observer or _NoObserver()
    loop = asyncio.get_running_loop()
    cpu0 = time.process_time()
    loop_lag: list[float] = []
    renderer = AheadRenderer(sends, config.body, config.api_key, config.run_id, render_executor, render_lookahead)
    client = HttpClient(config.connect_timeout_s, config.max_connections, KEEPALIVE_EXPIRY_S)
    try:
        await renderer.fill()
        start = loop.time()
        sender = _Sender(client, config, start, obs)
        ticker = asyncio.create_task(_ticker(loop_lag))
        tasks: list[asyncio.Task[SendResult]] = []
        try:
            for k, send in enumerate(sends):
                rendered = await renderer.take(k)
                delay = start + send.due_wall_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(sender.send(send, rendered)))
            results = list(await asyncio.gather(*tasks))
        finally:
            ticker.cancel()
            renderer.cancel()
            for task in tasks:
                task.cancel()
        wall = loop.time() - start
    finally:
        await client.aclose()
    stats = RunStats(
        wall_s=wall,
        client_cpu_s=time.process_time() - cpu0,
        peak_in_flight=sender.peak_in_flight,
        max_connections=config.max_connections,
        loop_lag_s=loop_lag,
    )
    return results, stats
