"""One request's delivery channel between the driver and its HTTP response.

The driver pushes token counts (tokens are delivered in order, so a count is enough), the
completion, or a close; the response task waits on :meth:`RequestState.wait` and writes what
is new. Event-loop only (not thread-safe).
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass, field

from lodestar.engine.request import FinishedRequest


class CloseReason(enum.Enum):
    CLIENT_GONE = "client_gone"  # the client disconnected
    DROPPED = "dropped"  # drop fault: cut the connection mid-stream
    GONE = "gone"  # go-away fault: the instance dropped every connection
    SHUTDOWN = "shutdown"  # the emulator is stopping


@dataclass(eq=False)
class RequestState:
    """Progress of one request. ``tokens`` counts delivered tokens; ``last_token_s`` is the
    virtual time of the newest. ``drop_after`` (drop fault) cuts the stream after that many."""

    engine_id: str
    prompt_tokens: int
    max_tokens: int
    stream: bool
    arrival_s: float = 0.0
    tokens: int = 0
    first_token_s: float | None = None
    last_token_s: float | None = None
    finished: FinishedRequest | None = None
    closed: CloseReason | None = None
    drop_after: int | None = None
    _event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def done(self) -> bool:
        return self.finished is not None

    def push(self, n: int, last_token_s: float) -> None:
        self.tokens += n
        self.last_token_s = last_token_s
        self._event.set()

    def finish(self, done: FinishedRequest) -> None:
        self.finished = done
        self._event.set()

    def close(self, reason: CloseReason) -> None:
        """Stop delivery (the first reason wins), even if the engine already finished it."""
        if self.closed is None:
            self.closed = reason
            self._event.set()

    async def wait(self) -> None:
        """Return once something happened since the previous call."""
        await self._event.wait()
        self._event.clear()
