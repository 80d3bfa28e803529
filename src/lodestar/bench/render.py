"""Request bodies rendered ahead of their due time, off the event loop.

Writing a prompt's text costs real CPU (about 7 µs per token: 8 ms for a 1,200-token prompt).
Done on the event loop, that time would delay the send it precedes and stamp concurrent
streams' tokens late. :class:`AheadRenderer` renders the sends in order in an executor (a
worker process in ``lodestar bench``; a process, not a thread, because rendering holds the GIL),
``lookahead`` sends ahead of the one being sent; the event loop only awaits finished futures.
Without an executor it renders inline (tests, tiny prompts).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

from lodestar.bench.payload import PATHS, BodyOptions, request_body, request_headers
from lodestar.bench.schedule import Send


@dataclass(frozen=True, slots=True)
class Rendered:
    """What goes on the wire for one send."""

    url: str
    content: bytes
    headers: dict[str, str]


def render(send: Send, body: BodyOptions, api_key: str | None, run_id: str) -> Rendered:
    """Pure (and picklable: it runs in a worker process)."""
    request = send.request
    payload = request_body(request, request.prompt.text(), body)
    headers = request_headers(request, api_key, run_id)
    headers["content-type"] = "application/json"
    content = json.dumps(payload, separators=(",", ":")).encode()
    return Rendered(send.url + PATHS[body.endpoint], content, headers)


class AheadRenderer:
    """Renders ``sends`` in order, at most ``lookahead`` ahead of the last one taken. Call
    :meth:`fill` once before the schedule starts, then :meth:`take` with 0, 1, 2, ..."""

    def __init__(
        self,
        sends: Sequence[Send],
        body: BodyOptions,
        api_key: str | None,
        run_id: str,
        executor: Executor | None = None,
        lookahead: int = 64,
    ) -> None:
        self.sends = sends
        self.body = body
        self.api_key = api_key
        self.run_id = run_id
        self.executor = executor
        self.lookahead = max(1, lookahead)
        self._pending: dict[int, asyncio.Future[Rendered]] = {}
        self._next = 0

    def _submit_until(self, stop: int) -> None:
        loop = asyncio.get_running_loop()
        while self._next < min(stop, len(self.sends)):
            k = self._next
            if self.executor is None:
                fut: asyncio.Future[Rendered] = loop.create_future()
                fut.set_result(render(self.sends[k], self.body, self.api_key, self.run_id))
            else:
                fut = loop.run_in_executor(self.executor, render, self.sends[k], self.body, self.api_key, self.run_id)
            self._pending[k] = fut
            self._next += 1

    async def fill(self) -> None:
        """Render the first window and wait for it (before the clock starts)."""
        self._submit_until(self.lookahead)
        if self._pending:
            await asyncio.gather(*self._pending.values())

    async def take(self, k: int) -> Rendered:
        """Send ``k``'s rendering (waits only if the renderer fell behind)."""
        self._submit_until(k + 1 + self.lookahead)
        return await self._pending.pop(k)

    def cancel(self) -> None:
        for fut in self._pending.values():
            fut.cancel()
        self._pending.clear()
