"""Consuming typed events. Undecodable messages go to the dead-letter topic and are counted;
the consumer never stops on bad input. Delivery is at-least-once: commit after processing
and dedupe by ``event_id`` downstream.

A broker that lost its log (a restarted broker with memory storage, a topic deleted and
re-created) answers fetches with a high watermark below the offset the consumer has reached;
the consumer would then wait, silently, until the new log grows past that offset and skip
everything before it. :meth:`EventConsumer.poll` raises :class:`LogRewoundError` instead, once
:class:`~lodestar.bus.rewind.RewindWatch` confirmed the loss (tansu misreports the watermark
of intact logs too), so the caller restarts its consumer (offsets from its group or its reset
policy, topics created again).

A consumer whose position jumps forward without delivering the records in between (aiokafka
resets the position silently when the broker answers a fetch with "offset out of range", and
one record too large for the fetch moves it one on) has skipped records. On a topic that is not
compacted, where offsets have no holes, :meth:`EventConsumer.poll` logs each such skip
(``event_offsets_skipped``) and counts the skipped offsets in ``stats.skipped_offsets``:
nothing is lost silently. A partition revoked in a rebalance is forgotten, so one that comes
back at another group member's commit is no skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from lodestar.bus.publish import EventPublisher
from lodestar.bus.rewind import RewindWatch
from lodestar.bus.settings import KafkaSettings
from lodestar_schemas.codec import EventDecodeError, decode_event
from lodestar_schemas.events import DeadLetter, Event
from lodestar_schemas.topics import TopicName, topic_spec

log = structlog.get_logger(__name__)

#: Dead letters get ids derived from the bad message (position and timestamp), so a re-read
#: (at-least-once) re-sends the same letter, which downstream dedupe by event id then removes.
DEAD_LETTER_NAMESPACE = uuid.UUID("2b0f6a5e-9d4c-4f6e-8a7e-5c3d1e0b9a41")


@dataclass(frozen=True)
class Received:
    """One decoded event with where it came from."""

    topic: str
    partition: int
    offset: int
    event: Event


class LogRewoundError(RuntimeError):
    """The broker's log of a partition ends before the offset this consumer has read up to."""

    def __init__(self, partitions: dict[str, tuple[int, int]]) -> None:
        self.partitions = partitions
        where = ", ".join(f"{tp} (read up to {pos}, log ends at {hw})" for tp, (pos, hw) in sorted(partitions.items()))
        super().__init__(f"the broker lost its log: {where}; restart the consumer")


class _ForgetRevoked(ConsumerRebalanceListener):  # type: ignore[misc]
    """Positions of revoked partitions are forgotten: a partition that comes back resumes from
    the commit of the member that had it meanwhile, which is no skip."""

    def __init__(self, rewind: RewindWatch) -> None:
        self.rewind = rewind

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        self.rewind.forget(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        pass


@dataclass
class ConsumerStats:
    received: int = 0
    dead_lettered: int = 0
    skipped_offsets: int = 0


class EventConsumer:
    """Reads events from ``topics`` (base names), decoding each with its topic's model.

    With ``group_id`` offsets are committed by :meth:`commit`; without it the consumer reads
    from ``auto_offset_reset`` every time it starts.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[TopicName],
        group_id: str | None = None,
        dead_letters: EventPublisher | None = None,
        auto_offset_reset: str = "earliest",
    ) -> None:
        self.settings = settings
        self.topics = tuple(topics)
        self.group_id = group_id
        self.auto_offset_reset = auto_offset_reset
        self.stats = ConsumerStats()
        self._dead_letters = dead_letters
        self._consumer: AIOKafkaConsumer | None = None
        self.rewind = RewindWatch()
        # compaction leaves holes in a log's offsets: a jump there is not a skip
        self._holes_expected = frozenset(
            settings.topic(t.value) for t in self.topics if topic_spec(t).config.get("cleanup.policy") == "compact"
        )

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            **self.settings.client_kwargs(),
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.auto_offset_reset,
            session_timeout_ms=self.settings.session_timeout_ms,
            rebalance_timeout_ms=self.settings.rebalance_timeout_ms,
            heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
            fetch_max_bytes=16 * 1_048_576,
            max_partition_fetch_bytes=16 * 1_048_576,
            # a topic created after the subscription (a broker that came back empty and had
            # its topics created again) is seen within this, not aiokafka's default 5 minutes
            metadata_max_age_ms=5_000,
        )
        self.rewind.reset()  # a new session: no position is known yet
        # before start, as topics given to the constructor are (start waits for the assignment)
        topics = [self.settings.topic(t.value) for t in self.topics]
        consumer.subscribe(topics=topics, listener=_ForgetRevoked(self.rewind))
        try:
            await consumer.start()
        except BaseException:  # no broker: close the client, or it is reported unclosed at exit
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise
        self._consumer = consumer

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await consumer.stop()
            except asyncio.CancelledError:
                # aiokafka's fetcher awaits its own cancelled retry tasks on close (after the
                # broker went away) and leaks that CancelledError; only ours may propagate.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
            except Exception:
                pass

    @property
    def client(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("EventConsumer.start() was not called")
        return self._consumer

    async def poll(self, timeout_ms: int = 500, max_records: int = 1000) -> list[Received]:
        """The next batch of decoded events; bad messages are dead-lettered, not returned.
        LogRewoundError if the broker lost the log this consumer was reading."""
        client = self.client
        batches = await client.getmany(timeout_ms=timeout_ms, max_records=max_records)
        out: list[Received] = []
        for tp, fetched in batches.items():
            expected = self.rewind.next_offset(tp)
            admitted = self.rewind.admit(tp, fetched)
            if admitted and expected is not None and admitted[0].offset > expected:
                self._skipped(tp, expected, admitted[0].offset)
            for record in admitted:
                try:
                    event = decode_event(tp.topic, record.value, self.settings.topic_prefix)
                except EventDecodeError as exc:
                    await self._dead_letter(tp, record.offset, record.value, exc, record.timestamp)
                    continue
                self.stats.received += 1
                out.append(Received(tp.topic, tp.partition, record.offset, event))
        lost = self.rewind.check(client.highwater, client.seek)
        if lost:
            raise LogRewoundError(lost)
        return out

    async def until_idle(self, idle_s: float) -> AsyncIterator[list[Received]]:
        """Batches until none has come for ``idle_s``: "read to the end" on a broker whose
        end offsets cannot be trusted (tansu's are wrong)."""
        idle_since = time.monotonic()
        while time.monotonic() - idle_since < idle_s:
            batch = await self.poll(timeout_ms=200)
            if batch:
                idle_since = time.monotonic()
                yield batch

    async def commit(self) -> None:
        if self.group_id is not None:
            await self.client.commit()

    async def seek_to_beginning(self) -> None:
        """Replay every assigned partition from its first retained offset."""
        partitions = self.client.assignment()
        if partitions:
            await self.client.seek_to_beginning(*partitions)
            self.rewind.reset()

    def assign_all(self) -> list[TopicPartition]:
        """Partitions of the subscribed topics known from metadata (for group-less replay)."""
        parts: list[TopicPartition] = []
        for topic in self.topics:
            name = self.settings.topic(topic.value)
            for p in sorted(self.client.partitions_for_topic(name) or ()):
                parts.append(TopicPartition(name, p))
        return parts

    def _skipped(self, tp: TopicPartition, expected: int, resumed_at: int) -> None:
        if tp.topic in self._holes_expected:
            return
        self.stats.skipped_offsets += resumed_at - expected
        log.warning(
            "event_offsets_skipped",
            topic=tp.topic,
            partition=tp.partition,
            expected=expected,
            resumed_at=resumed_at,
            skipped=resumed_at - expected,
        )

    async def _dead_letter(
        self, tp: TopicPartition, offset: int, value: bytes | None, exc: EventDecodeError, timestamp_ms: int = -1
    ) -> None:
        self.stats.dead_lettered += 1
        payload = value or b""
        log.warning("event_dead_lettered", topic=tp.topic, offset=offset, field=exc.field, reason=exc.reason)
        if self._dead_letters is None:
            return
        letter = DeadLetter(
            event_id=uuid.uuid5(DEAD_LETTER_NAMESPACE, f"{tp.topic}/{tp.partition}/{offset}/{timestamp_ms}"),
            # the bad message's own timestamp: the same letter each time the message is re-read
            ts=datetime.fromtimestamp(timestamp_ms / 1000, UTC) if timestamp_ms >= 0 else datetime.now(UTC),
            source_topic=tp.topic,
            partition=tp.partition,
            offset=offset,
            reason=exc.reason[:2000],
            field=exc.field,
            payload_bytes=len(payload),
            payload_head=payload[:4096],
        )
        await self._dead_letters.send(letter)
