"""Every event type through the real broker: produce, consume, resume, replay, dead-letter.

Runs against tansu. What real Kafka guarantees beyond it (idempotent producers, exact end
offsets) is not relied on: these tests pass only through behaviour both brokers share.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from structlog.testing import capture_logs

from lodestar.bus.consume import EventConsumer, Received
from lodestar.bus.model_topic import newest_model_update, put_model_update
from lodestar.bus.publish import BufferedPublisher, EventPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar_schemas import DeadLetter, Event, InstanceState, ModelUpdate, RouteDecision, TopicName
from lodestar_schemas.topics import TOPICS, spec_for_event

pytestmark = pytest.mark.integration

ALL_TOPICS = [spec.name for spec in TOPICS]


async def _drain(consumer: EventConsumer, want: int, timeout_s: float = 20.0) -> list[Received]:
    got: list[Received] = []
    deadline = asyncio.get_running_loop().time() + timeout_s
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        got.extend(await consumer.poll(timeout_ms=200))
    return got


async def _publish(settings: KafkaSettings, events: list[Event]) -> None:
    pub = EventPublisher(settings)
    await pub.start()
    try:
        for event in events:
            await pub.send(event)
    finally:
        await pub.stop()


async def test_every_event_type_round_trips_and_group_resumes_from_commit(
    topics: KafkaSettings, events: list[Event]
) -> None:
    first = events
    second = [e.model_copy(update={"event_id": uuid.uuid4()}) for e in events]
    await _publish(topics, first)

    consumer = EventConsumer(topics, ALL_TOPICS, group_id="g-resume")
    await consumer.start()
    got = await _drain(consumer, len(first))
    await consumer.commit()
    await consumer.stop()
    assert sorted(r.event.event_id for r in got) == sorted(e.event_id for e in first)
    for r in got:
        original = next(e for e in first if e.event_id == r.event.event_id)
        assert r.event == original
        assert r.topic == spec_for_event(original).full_name(topics.topic_prefix)

    await _publish(topics, second)
    restarted = EventConsumer(topics, ALL_TOPICS, group_id="g-resume")
    await restarted.start()
    resumed = await _drain(restarted, len(second))
    await restarted.stop()
    # Only the events after the committed offsets come back: nothing re-read, nothing lost.
    assert sorted(r.event.event_id for r in resumed) == sorted(e.event_id for e in second)


async def test_replay_topic_from_the_beginning(topics: KafkaSettings, events: list[Event]) -> None:
    state = events[0]
    batch = [state.model_copy(update={"num_running": i, "event_id": uuid.uuid4()}) for i in range(50)]
    await _publish(topics, batch)

    reader = EventConsumer(topics, [TopicName.INSTANCE_STATE], group_id="g-replay")
    await reader.start()
    once = await _drain(reader, len(batch))
    await reader.commit()
    await reader.seek_to_beginning()
    twice = await _drain(reader, len(batch))
    await reader.stop()
    assert [r.event.num_running for r in once] == list(range(50))  # type: ignore[attr-defined]
    assert [r.event.num_running for r in twice] == list(range(50))  # type: ignore[attr-defined]


async def _read_then_jump(settings: KafkaSettings, topic: TopicName, events: list[Event], jump: int) -> EventConsumer:
    """Publish ``events`` to ``topic``, read two, move the position ``jump`` offsets past what
    was read (as aiokafka's silent reset after "offset out of range" does), read the rest."""
    await _publish(settings, events)
    consumer = EventConsumer(settings, [topic], group_id=None)
    await consumer.start()
    try:
        first: list[Received] = []
        while len(first) < 2:
            first.extend(await consumer.poll(timeout_ms=200, max_records=2 - len(first)))
        consumer.client.seek(TopicPartition(settings.topic(topic.value), 0), first[-1].offset + 1 + jump)
        await _drain(consumer, len(events) - 2 - jump)
    finally:
        await consumer.stop()
    return consumer


async def test_a_consumer_whose_position_jumps_past_records_logs_and_counts_them(
    topics: KafkaSettings, events: list[Event]
) -> None:
    state = next(e for e in events if isinstance(e, InstanceState))
    batch = [state.model_copy(update={"num_running": i, "event_id": uuid.uuid4()}) for i in range(10)]
    with capture_logs() as logs:
        consumer = await _read_then_jump(topics, TopicName.INSTANCE_STATE, batch, jump=3)
    assert consumer.stats.received == 7
    assert consumer.stats.skipped_offsets == 3
    (skip,) = [e for e in logs if e["event"] == "event_offsets_skipped"]
    assert skip["topic"] == topics.topic(TopicName.INSTANCE_STATE.value)
    assert (skip["expected"], skip["resumed_at"], skip["skipped"]) == (2, 5, 3)


async def test_holes_in_a_compacted_topics_offsets_are_not_skips(topics: KafkaSettings, events: list[Event]) -> None:
    (model,) = [e for e in events if isinstance(e, ModelUpdate)]
    updates = [model.model_copy(update={"version": v, "event_id": uuid.uuid4()}) for v in range(1, 7)]
    with capture_logs() as logs:
        consumer = await _read_then_jump(topics, TopicName.MODEL_UPDATES, updates, jump=2)
    assert consumer.stats.received == 4
    assert consumer.stats.skipped_offsets == 0
    assert not [e for e in logs if e["event"] == "event_offsets_skipped"]


async def test_a_partition_back_from_another_group_member_resumes_without_a_skip(
    topics: KafkaSettings, events: list[Event]
) -> None:
    """The other member read the partition on and committed; its return is no skip."""
    fast = topics.model_copy(
        update={"session_timeout_ms": 4000, "rebalance_timeout_ms": 4000, "heartbeat_interval_ms": 500}
    )
    decision = next(e for e in events if isinstance(e, RouteDecision))

    def batch(n: int) -> list[Event]:
        return [
            decision.model_copy(update={"decision_id": f"d-{uuid.uuid4()}", "event_id": uuid.uuid4()}) for _ in range(n)
        ]

    async def both_read(consumers: list[EventConsumer], events: list[Event]) -> bool:
        """Poll until every one of ``events`` was read (a rebalance may deliver some twice)."""
        want = {e.event_id for e in events}
        deadline = asyncio.get_running_loop().time() + 30
        while want and asyncio.get_running_loop().time() < deadline:
            for c in consumers:
                got = await c.poll(timeout_ms=100)
                want -= {r.event.event_id for r in got}
        for c in consumers:
            await c.commit()
        return not want

    a = EventConsumer(fast, [TopicName.ROUTE_DECISIONS], group_id="g-rebalance")
    b = EventConsumer(fast, [TopicName.ROUTE_DECISIONS], group_id="g-rebalance")
    await a.start()
    try:
        first = batch(20)
        await _publish(fast, first)
        assert await both_read([a], first)
        joining = asyncio.create_task(b.start())  # the join needs a to take part: keep it polling
        deadline = asyncio.get_running_loop().time() + 30
        while not joining.done() or len(a.client.assignment()) != 2:
            assert asyncio.get_running_loop().time() < deadline, "the group did not rebalance"
            await a.poll(timeout_ms=100)
        await joining
        assert len(b.client.assignment()) == 2
        second = batch(40)
        await _publish(fast, second)
        assert await both_read([a, b], second)
        await b.stop()  # a gets b's partitions back, at b's commits
        third = batch(20)
        await _publish(fast, third)
        assert await both_read([a], third)
        assert len(a.client.assignment()) == 4
    finally:
        await a.stop()
        await b.stop()
    assert a.stats.skipped_offsets == 0 and b.stats.skipped_offsets == 0


async def test_malformed_bytes_on_each_topic_are_dead_lettered_and_consumer_continues(
    topics: KafkaSettings, events: list[Event]
) -> None:
    raw = AIOKafkaProducer(**topics.client_kwargs(), acks="all", enable_idempotence=False)
    await raw.start()
    try:
        for spec in TOPICS:
            if spec.name is TopicName.DEAD_LETTER:
                continue
            await raw.send_and_wait(spec.full_name(topics.topic_prefix), b"\xff not json")
    finally:
        await raw.stop()
    good = [e for e in events if not isinstance(e, DeadLetter)]
    await _publish(topics, good)

    dlq = EventPublisher(topics)
    await dlq.start()
    source_topics = [t for t in ALL_TOPICS if t is not TopicName.DEAD_LETTER]
    consumer = EventConsumer(topics, source_topics, group_id="g-bad", dead_letters=dlq)
    await consumer.start()
    got = await _drain(consumer, len(good))
    await consumer.stop()
    await dlq.stop()
    assert sorted(r.event.event_id for r in got) == sorted(e.event_id for e in good)
    assert consumer.stats.dead_lettered == len(source_topics)

    letters_reader = EventConsumer(topics, [TopicName.DEAD_LETTER], group_id="g-dlq")
    await letters_reader.start()
    letters = await _drain(letters_reader, len(source_topics))
    await letters_reader.stop()
    assert sorted(r.event.source_topic for r in letters) == sorted(  # type: ignore[attr-defined]
        topics.topic(t.value) for t in source_topics
    )
    assert all("not UTF-8 JSON" in r.event.reason for r in letters)  # type: ignore[attr-defined]


async def test_a_lingering_publisher_sends_events_together_and_flushes_at_close(
    topics: KafkaSettings, events: list[Event]
) -> None:
    publisher = BufferedPublisher(topics, linger_s=30.0)
    publisher.start()
    for event in events:
        assert publisher.publish(event)
    await asyncio.sleep(0.5)
    assert publisher.stats.sent == 0 and publisher.pending == len(events)  # held for the linger
    t0 = asyncio.get_running_loop().time()
    await publisher.close(drain_timeout_s=20.0)
    assert asyncio.get_running_loop().time() - t0 < 20.0  # close does not wait out the linger
    assert publisher.stats.sent == len(events) and publisher.stats.dropped == 0
    consumer = EventConsumer(topics, ALL_TOPICS, group_id=None)
    await consumer.start()
    try:
        got = await _drain(consumer, len(events))
    finally:
        await consumer.stop()
    assert sorted(r.event.event_id for r in got) == sorted(e.event_id for e in events)


async def test_the_model_topic_gives_its_newest_update_and_takes_one_back(
    topics: KafkaSettings, events: list[Event]
) -> None:
    assert await newest_model_update(topics, idle_s=0.5) is None
    (model,) = [e for e in events if isinstance(e, ModelUpdate)]
    for version in (3, 5, 4):  # out of order: the highest version wins, not the last written
        await put_model_update(topics, model.model_copy(update={"version": version, "event_id": uuid.uuid4()}))
    newest = await newest_model_update(topics, idle_s=0.5)
    assert newest is not None and newest.version == 5 and newest.weights == model.weights
