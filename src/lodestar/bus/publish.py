"""Publishing events: an awaited publisher, and a bounded non-blocking buffer in front of it.

The buffer never blocks the caller: when full it drops the new event and counts it. While the
broker is unreachable it keeps events (up to capacity) and retries with capped backoff, so a
broker outage delays events instead of losing them. With ``linger_s`` it waits that long after
the first event of a quiet spell before sending, so events leave in batches: one produce
request (one socket write, one wake-up of the broker) per batch instead of per event, which is
CPU taken from the request path on a small machine.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from lodestar.bus.settings import KafkaSettings
from lodestar_schemas.codec import encode_event
from lodestar_schemas.events import Event
from lodestar_schemas.topics import spec_for_event

log = structlog.get_logger(__name__)


class EventPublisher:
    """Sends events to their own topics with ``acks=all``; ``send`` returns once acknowledged.

    Idempotence stays off: the local broker (tansu) rejects InitProducerId. Consumers dedupe
    by event id instead.
    """

    def __init__(self, settings: KafkaSettings, linger_ms: int = 2) -> None:
        self.settings = settings
        self.linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            **self.settings.client_kwargs(),
            acks="all",
            enable_idempotence=False,
            linger_ms=self.linger_ms,
            max_request_size=8 * 1_048_576,
        )
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            with contextlib.suppress(Exception):
                await producer.stop()

    @property
    def started(self) -> bool:
        return self._producer is not None

    async def send(self, event: Event) -> None:
        await (await self.send_nowait(event))

    async def send_nowait(self, event: Event) -> asyncio.Future[object]:
        """Queue ``event`` in the client; the returned future resolves on acknowledgement."""
        if self._producer is None:
            raise RuntimeError("EventPublisher.start() was not called")
        spec = spec_for_event(event)
        fut: asyncio.Future[object] = await self._producer.send(
            spec.full_name(self.settings.topic_prefix), value=encode_event(event), key=spec.key(event)
        )
        return fut


@dataclass
class PublisherStats:
    """Counters of a :class:`BufferedPublisher` (exported as Prometheus metrics by services)."""

    accepted: int = 0
    sent: int = 0
    dropped: int = 0
    send_failures: int = 0


class BufferedPublisher:
    """Non-blocking ``publish`` into a bounded buffer drained by a background task."""

    def __init__(
        self,
        settings: KafkaSettings,
        capacity: int = 100_000,
        batch_size: int = 500,
        max_backoff_s: float = 2.0,
        linger_s: float = 0.0,
    ) -> None:
        self.settings = settings
        self.capacity = capacity
        self.batch_size = batch_size
        self.linger_s = linger_s
        self.max_backoff_s = max_backoff_s
        self.stats = PublisherStats()
        self._buffer: collections.deque[Event] = collections.deque()
        self._wakeup = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._task: asyncio.Task[None] | None = None
        self._publisher = EventPublisher(settings)
        self._closing = False
        self._closed = asyncio.Event()

    def publish(self, event: Event) -> bool:
        """Buffer ``event`` for sending; False (and counted as dropped) if the buffer is full."""
        if len(self._buffer) >= self.capacity:
            self.stats.dropped += 1
            return False
        self._buffer.append(event)
        self._empty.clear()
        self.stats.accepted += 1
        self._wakeup.set()
        return True

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="buffered-publisher")

    async def close(self, drain_timeout_s: float = 5.0) -> None:
        """Try to send what is buffered for up to ``drain_timeout_s``; the rest counts as dropped."""
        self._closing = True
        self._closed.set()  # ends a linger at once
        self._wakeup.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty.wait(), drain_timeout_s)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.stats.dropped += len(self._buffer)
        self._buffer.clear()
        await self._publisher.stop()

    async def _run(self) -> None:
        backoff = 0.05
        lingered = False
        while True:
            if not self._buffer:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.linger_s > 0 and not lingered and len(self._buffer) < self.batch_size:
                lingered = True  # once per batch: what arrives meanwhile leaves with it
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), self.linger_s)
                continue
            lingered = False
            try:
                if not self._publisher.started:
                    await self._publisher.start()
                await self._send_batch()
                backoff = 0.05
            except (KafkaError, OSError, TimeoutError) as exc:
                self.stats.send_failures += 1
                log.warning("publish_failed", error=type(exc).__name__, pending=len(self._buffer), retry_s=backoff)
                await self._publisher.stop()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)

    async def _send_batch(self) -> None:
        batch = [self._buffer[i] for i in range(min(self.batch_size, len(self._buffer)))]
        futures = [await self._publisher.send_nowait(event) for event in batch]
        await asyncio.gather(*futures)
        # Only acknowledged events leave the buffer: a failure above keeps them for a retry.
        for _ in batch:
            self._buffer.popleft()
        self.stats.sent += len(batch)
        if not self._buffer:
            self._empty.set()
