"""Feedback to the router, off the request path: :meth:`FeedbackQueue.put` never blocks (a
bounded queue; when full the event is dropped and counted), and one task sends what is queued
as ``FeedbackBatch`` bodies to ``POST {router}/v1/feedback``.

Batches form by themselves under load (events queue up while a POST is in flight); at low
load the task waits ``linger_s`` after the first event to send a few together. A batch the
router does not take (down, slow, error) is dropped and counted, not retried: the router
releases decisions without final feedback after its in-flight timeout, and stale first-token
news is worthless. Event-loop only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

import structlog

from lodestar.http_client import HttpClient, HttpError
from lodestar_schemas.router_api import Feedback, FeedbackBatch

log = structlog.get_logger(__name__)

_JSON = {"content-type": "application/json"}


class FeedbackQueue:
    def __init__(
        self,
        client: HttpClient,
        router_url: str,
        capacity: int = 100_000,
        batch_size: int = 1000,
        linger_s: float = 0.02,
        timeout_s: float = 1.0,
    ) -> None:
        self.client = client
        self.url = router_url.rstrip("/") + "/v1/feedback"
        self.capacity = capacity
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.timeout_s = timeout_s
        self.sent = 0
        self.dropped_full = 0
        self.dropped_failed = 0
        self._queue: collections.deque[Feedback] = collections.deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    @property
    def pending(self) -> int:
        return len(self._queue)

    def put(self, event: Feedback) -> bool:
        """Queue ``event``; False (and counted) if the queue is full."""
        if len(self._queue) >= self.capacity:
            self.dropped_full += 1
            return False
        self._queue.append(event)
        self._wakeup.set()
        return True

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gateway-feedback")

    async def close(self, drain_timeout_s: float = 2.0) -> None:
        """Send what is queued for up to ``drain_timeout_s``; the rest counts as dropped."""
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_timeout_s):
                    while self._queue:
                        await self.flush()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.dropped_failed += len(self._queue)
        self._queue.clear()

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                if self.linger_s > 0 and len(self._queue) < self.batch_size:
                    await asyncio.sleep(self.linger_s)
            await self.flush()

    async def flush(self) -> None:
        """Send one batch of up to ``batch_size`` queued events."""
        n = min(self.batch_size, len(self._queue))
        if n == 0:
            return
        batch = [self._queue.popleft() for _ in range(n)]
        body = FeedbackBatch(events=batch).model_dump_json().encode()
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self.client.request("POST", self.url, body, _JSON)
                try:
                    await response.read()
                finally:
                    response.close()
        except (TimeoutError, HttpError) as exc:
            self._dropped(n, f"{type(exc).__name__}: {exc}")
            return
        if response.status != 200:
            self._dropped(n, f"HTTP {response.status}")
            return
        self.sent += n
        if self._failing:
            self._failing = False
            log.info("feedback_resumed")

    def _dropped(self, n: int, why: str) -> None:
        self.dropped_failed += n
        if not self._failing:  # one line per outage, not per batch
            self._failing = True
            log.warning("feedback_failed", error=why, dropped=n)
