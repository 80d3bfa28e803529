"""What every Lodestar service process does the same way: bind its HTTP port up front (a
taken port is a clear error before anything starts), serve a FastAPI app with uvicorn without
uvicorn's own signal handling, create its topics while the broker may still be coming up, and
stop cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping

import structlog
import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from lodestar.bus.admin import ensure_topics
from lodestar.bus.settings import KafkaSettings
from lodestar.gc_tuning import freeze_startup_heap
from lodestar.localinfra.ports import LISTEN_BACKLOG
from lodestar.localinfra.ports import PortInUseError as PortInUseError  # re-exported
from lodestar.localinfra.ports import bind_socket as bind_socket  # re-exported
from lodestar_schemas.topics import TopicSpec

log = structlog.get_logger(__name__)


Handler = Callable[[Request], Awaitable[Response]]


class HotRoutes:
    """An ASGI app in front of ``app``: ``POST`` on the paths of ``routes`` goes straight to its
    handler; everything else to ``app`` (which should know those paths too: 405 for other
    methods, OpenAPI). The framework's middleware stack (error, exception, exit-stack layers: an
    async call and a scope copy each, per request) only adds time on a request's critical path,
    so a hot handler answers every expected refusal itself; one that raises anyway (a bug) is
    logged and answered with ``internal_error(exc)``, as the app's error handler would."""

    def __init__(
        self, app: ASGIApp, routes: Mapping[str, Handler], internal_error: Callable[[Exception], Response]
    ) -> None:
        self.app = app
        self.routes = routes
        self.internal_error = internal_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self.routes.get(scope["path"])
            if handler is not None:
                try:
                    response = await handler(Request(scope, receive, send))
                except Exception as exc:
                    log.exception("request_handler_failed", path=scope["path"])
                    response = self.internal_error(exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers (the service owns SIGINT/SIGTERM)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """An ASGI app (a FastAPI app, or one in front of it) served on an already bound socket.
    No ``X-Forwarded-*`` rewriting (no service reads the client's address; uvicorn's middleware
    for it is one more ASGI layer per request) and no ``server`` header."""

    def __init__(self, app: ASGIApp, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_config=None, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1,
            proxy_headers=False, server_header=False, backlog=LISTEN_BACKLOG,
        )  # fmt: skip
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self.sock]), name=f"api-{self.port}")

    async def stop(self, timeout_s: float = 3.0) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout_s)


async def ensure_topics_retrying(
    kafka: KafkaSettings, specs: tuple[TopicSpec, ...], stop: asyncio.Event | None = None
) -> bool:
    """Create ``specs`` (idempotent), retrying with backoff while the broker is unreachable;
    True once they exist, False if ``stop`` was set first (a process told to stop while its
    broker is down stops, instead of retrying on)."""
    stopped = stop if stop is not None else asyncio.Event()  # without one: never stopped
    backoff = 0.5
    while not stopped.is_set():
        try:
            await ensure_topics(kafka, specs)
            return True
        except Exception as exc:  # aiokafka raises a wide variety while the broker is down
            log.warning("topic_setup_failed", error=f"{type(exc).__name__}: {exc}", retry_s=backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), backoff)
            backoff = min(backoff * 2, 5.0)
    return False


async def run_until_signal(run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``run(stop)`` and set ``stop`` on SIGINT or SIGTERM; what exists before is exempt
    from later garbage collections (:func:`~lodestar.gc_tuning.freeze_startup_heap`)."""
    freeze_startup_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop when it is installed (``uvicorn[standard]``), else asyncio's
    (``None`` for :class:`asyncio.Runner`). Services on the request path run on it."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
