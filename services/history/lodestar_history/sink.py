"""The sink: every Lodestar topic → ClickHouse, at least once, never giving up.

Order of one cycle: poll → map to rows → (size or age reached) insert every table's rows →
commit the consumer group's offsets. Offsets are committed only after all inserts of the
batch succeeded, so a crash (even ``kill -9`` between insert and commit) makes the next run
re-read and re-insert the batch: duplicates, which the tables remove by event id (see
``infra/clickhouse/README.md``). Nothing read is ever dropped without being stored.

Failures never end :meth:`HistorySink.run`:

* ClickHouse insert fails → retry the same rows with capped backoff (no polling meanwhile; the
  broker keeps the events), counted in ``insert_failures``.
* The broker fails (connect, dead-letter send, commit, or an idle-time metadata probe) → drop
  the uncommitted rows, restart the consumer from the committed offsets after a capped backoff
  (re-creating missing topics), counted in ``consumer_failures``.

Undecodable messages are sent to the dead-letter topic by :class:`EventConsumer` and reach the
``dead_letters`` table through that topic (this sink consumes it too).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from lodestar.bus.admin import ensure_topics
from lodestar.bus.consume import EventConsumer
from lodestar.bus.publish import EventPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar_history.batch import PendingBatch
from lodestar_history.metrics import HistoryMetrics
from lodestar_history.rows import COLUMNS
from lodestar_schemas.topics import TOPICS, TopicName

log = structlog.get_logger(__name__)

ALL_TOPICS: tuple[TopicName, ...] = tuple(spec.name for spec in TOPICS)


class RowWriter(Protocol):
    """Blocking insert of one block (the sink calls it in a worker thread)."""

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None: ...


@dataclass(frozen=True)
class SinkConfig:
    group_id: str = "lodestar-history"
    batch_max_rows: int = 5000
    flush_interval_s: float = 1.0
    max_backoff_s: float = 10.0
    poll_timeout_ms: int = 200
    #: while idle, ask the broker for metadata this often; a failure restarts the consumer
    #: (aiokafka itself reconnects silently, so an outage would otherwise go unseen)
    probe_interval_s: float = 5.0


@dataclass
class SinkStatus:
    """What ``/health`` reports about the sink."""

    consumer_up: bool = False
    last_flush_wall_s: float | None = None
    consecutive_failures: int = 0
    last_error: str | None = None
    buffered_rows: int = 0


class Backoff:
    """Doubling delays from ``initial_s`` up to ``cap_s``."""

    def __init__(self, initial_s: float, cap_s: float) -> None:
        self.initial_s = initial_s
        self.cap_s = cap_s
        self._next = initial_s

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.cap_s)
        return delay

    def reset(self) -> None:
        self._next = self.initial_s


class _Stopping(Exception):
    """Raised inside a session when a stop was requested during a retry."""


class HistorySink:
    """Consumes ``topics`` with group ``config.group_id`` and writes through ``writer``.

    :meth:`run` until :meth:`request_stop` (or cancellation). On a requested stop it flushes
    and commits what it holds if it can, then returns.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        writer: RowWriter,
        metrics: HistoryMetrics,
        config: SinkConfig,
        topics: Sequence[TopicName] = ALL_TOPICS,
    ) -> None:
        self.kafka = kafka
        self.writer = writer
        self.metrics = metrics
        self.config = config
        self.topics = tuple(topics)
        self.status = SinkStatus()
        self._stop = asyncio.Event()

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        backoff = Backoff(0.1, self.config.max_backoff_s)
        while not self._stop.is_set():
            try:
                await self._session(backoff)
            except _Stopping:
                return
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                await self._session_failed(exc, backoff)  # a library leaked its own cancellation
            except Exception as exc:
                await self._session_failed(exc, backoff)

    async def _session_failed(self, exc: BaseException, backoff: Backoff) -> None:
        delay = backoff.next()
        self.metrics.consumer_failures.inc()
        self._failed(exc)
        log.warning("history_consumer_failed", error=self.status.last_error, retry_s=delay)
        await self._sleep(delay)

    async def _session(self, backoff: Backoff) -> None:
        dead_letters = EventPublisher(self.kafka)
        consumer = EventConsumer(self.kafka, self.topics, group_id=self.config.group_id, dead_letters=dead_letters)
        batch = PendingBatch(self.config.batch_max_rows, self.config.flush_interval_s)
        try:
            await ensure_topics(self.kafka)
            await dead_letters.start()
            await consumer.start()
            self._set_up(True)
            log.info("history_consumer_started", group_id=self.config.group_id, topics=len(self.topics))
            dead_seen = consumer.stats.dead_lettered
            broker_seen_at = time.monotonic()
            while True:
                if self._stop.is_set():
                    if batch.dirty:
                        await self._flush(batch, consumer)
                    raise _Stopping
                received = await consumer.poll(timeout_ms=self._poll_timeout_ms(batch), max_records=batch.room())
                now = time.monotonic()
                if received:
                    batch.add(received, now)
                    broker_seen_at = now
                if consumer.stats.dead_lettered != dead_seen:
                    self.metrics.dead_lettered.inc(consumer.stats.dead_lettered - dead_seen)
                    dead_seen = consumer.stats.dead_lettered
                    batch.mark_read(now)
                    broker_seen_at = now
                if now - broker_seen_at >= self.config.probe_interval_s:
                    # KafkaError at once when no broker answers; the session then restarts
                    await asyncio.wait_for(consumer.client.topics(), self.config.probe_interval_s)
                    broker_seen_at = now
                self._set_buffered(batch.size)
                if batch.due(now):
                    await self._flush(batch, consumer)
                    backoff.reset()
        finally:
            self._set_up(False)
            self._set_buffered(0)
            await consumer.stop()
            await dead_letters.stop()

    def _poll_timeout_ms(self, batch: PendingBatch) -> int:
        if batch.first_read_at is None:
            return self.config.poll_timeout_ms
        left_s = batch.first_read_at + self.config.flush_interval_s - time.monotonic()
        return max(1, min(self.config.poll_timeout_ms, int(left_s * 1000)))

    async def _flush(self, batch: PendingBatch, consumer: EventConsumer) -> None:
        for table in batch.tables():
            await self._insert(table, batch.take(table))
            batch.drop(table)
        await consumer.commit()
        for table, ts in batch.newest_ts.items():
            self.metrics.last_event_ts.labels(table).set(ts.timestamp())
        for table, count in batch.unstorable.items():
            self.metrics.unstorable.labels(table).inc(count)
        batch.committed()
        self._set_buffered(0)
        self.metrics.flushes.inc()
        wall = time.time()
        self.metrics.last_flush_ts.set(wall)
        self.status.last_flush_wall_s = wall
        self.status.consecutive_failures = 0
        await self._update_lag(consumer)

    async def _insert(self, table: str, rows: list[tuple[object, ...]]) -> None:
        backoff = Backoff(0.1, self.config.max_backoff_s)
        while True:
            start = time.perf_counter()
            try:
                await asyncio.to_thread(self.writer.insert, table, COLUMNS[table], rows)
            except Exception as exc:
                delay = backoff.next()
                self.metrics.insert_failures.labels(table).inc()
                self._failed(exc)
                log.warning(
                    "history_insert_failed", table=table, rows=len(rows), error=self.status.last_error, retry_s=delay
                )
                if await self._sleep(delay):
                    raise _Stopping from None
                continue
            self.metrics.insert_seconds.labels(table).observe(time.perf_counter() - start)
            self.metrics.rows_inserted.labels(table).inc(len(rows))
            self.metrics.insert_batches.labels(table).inc()
            return

    async def _update_lag(self, consumer: EventConsumer) -> None:
        """Lag from the high watermark of the latest fetch response (never from end_offsets)."""
        client = consumer.client
        for tp in client.assignment():
            highwater = client.highwater(tp)
            if highwater is None:
                continue
            try:
                position = await asyncio.wait_for(client.position(tp), 1.0)
            except Exception:
                continue
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))

    async def _sleep(self, delay_s: float) -> bool:
        """Sleep ``delay_s`` or until a stop is requested; True if stopping."""
        try:
            await asyncio.wait_for(self._stop.wait(), delay_s)
        except TimeoutError:
            return False
        return True

    def _failed(self, exc: BaseException) -> None:
        self.status.consecutive_failures += 1
        self.status.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"

    def _set_up(self, up: bool) -> None:
        self.status.consumer_up = up
        self.metrics.consumer_up.set(1 if up else 0)

    def _set_buffered(self, rows: int) -> None:
        self.status.buffered_rows = rows
        self.metrics.buffered_rows.set(rows)
