"""A raw socket server on 127.0.0.1 for tests that script an HTTP peer byte by byte (an
engine that closes, stalls or answers malformed), shared by the unit tests of every client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def tcp_server(handle: Handler) -> AsyncIterator[str]:
    """``handle`` runs per connection; yields the base URL (``http://127.0.0.1:PORT``). A client
    that goes away mid-request ends its handler quietly, and the connection is closed when the
    handler returns. On exit the server closes and is waited for up to 1 s (a handler still
    sleeping is left to end)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handle(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1.0)
