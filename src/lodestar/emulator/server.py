"""One HTTP listener per instance: uvicorn on a socket we bind, which can go away and come back.

The socket is bound up front (so a busy port fails before anything starts, with
:class:`PortInUseError`) and handed to a uvicorn server running in the shared event loop.
Go-away closes the listening socket at once (new connections are refused) and shuts that
uvicorn server down without waiting for its connections; come-back binds the same port again
and starts a fresh uvicorn server for the same app. Signals are the process's business
(uvicorn's own handlers are disabled).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from lodestar.localinfra.ports import LISTEN_BACKLOG, bind_socket


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class InstanceServer:
    """Serves ``app`` on ``host:port``. ``bind`` (sync) then ``start`` (in the loop)."""

    def __init__(self, app: Any, host: str, port: int, name: str) -> None:
        self.host = host
        self.port = port
        self.name = name
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            ws="none",
            timeout_graceful_shutdown=1,
            backlog=LISTEN_BACKLOG,  # uvicorn listens on our socket again, with its own backlog
        )
        self._sock: socket.socket | None = None
        self._server: _Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def gone(self) -> bool:
        return self._server is None

    def bind(self) -> None:
        """Bind the listening socket now (raises :class:`PortInUseError`)."""
        if self._sock is None:
            self._sock = bind_socket(self.host, self.port, self.name)
            self.port = self._sock.getsockname()[1]

    def start(self) -> None:
        """Serve on the bound socket (binding it first if needed)."""
        if self._server is not None:
            return
        self.bind()
        assert self._sock is not None
        server = _Server(self.config)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[self._sock]), name=f"http-{self.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._server = server

    def go_away(self) -> None:
        """Refuse new connections now; shut the server down without waiting for connections."""
        server, self._server = self._server, None
        sock, self._sock = self._sock, None
        if server is None:
            if sock is not None:  # bound, never served
                sock.close()
            return
        for listener in getattr(server, "servers", []):
            listener.close()  # closes the listening socket at once
        # (if uvicorn has not started serving yet, its shutdown closes the socket)
        for connection in list(server.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close now, busy ones after their response
        server.should_exit = True
        server.force_exit = True

    def come_back(self) -> None:
        self.start()

    async def stop(self, timeout_s: float = 3.0) -> None:
        self.go_away()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)


_DROP_MESSAGE = "ASGI callable returned without completing response."


class _FaultDropFilter(logging.Filter):
    """Drops uvicorn's error line for a response ended on purpose (a fault's dropped connection)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_MESSAGE


def quiet_intentional_drops() -> None:
    """Idempotent: install :class:`_FaultDropFilter` on uvicorn's error logger."""
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _FaultDropFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(_FaultDropFilter())
