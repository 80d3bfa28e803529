"""The history service on a real broker (tansu) with chDB: nothing lost, nothing doubled.

What is relied on is what any Kafka broker provides: consumer groups with committed offsets,
keyed partitions, replay from the committed offset. Not relied on: end offsets (wrong on
tansu), idempotent producers (broken on tansu with aiokafka) — duplicates are expected and
removed by ClickHouse-side dedupe on event id.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from lodestar.bus.admin import ensure_topics
from lodestar.bus.publish import EventPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar.localinfra.broker import broker_process, start_broker
from lodestar.localinfra.ports import free_port
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar_history.client import HistoryClient, HistoryClientError
from lodestar_history.metrics import HistoryMetrics
from lodestar_history.sink import HistorySink, SinkConfig
from lodestar_schemas import DeadLetter, Event, TopicName
from lodestar_schemas.topics import TOPICS

pytestmark = pytest.mark.integration

WINDOW = {"from_ts": "now-1h", "to_ts": "now+1h"}
SOURCE_TOPICS = [spec.name for spec in TOPICS if spec.name is not TopicName.DEAD_LETTER]


def fresh(templates: list[Event], per_type: int) -> list[Event]:
    """``per_type`` new events of every type (new ids, stamped now; old stamps would be TTL'd)."""
    now = datetime.now(UTC)
    return [t.model_copy(update={"event_id": uuid.uuid4(), "ts": now}) for _ in range(per_type) for t in templates]


async def publish(settings: KafkaSettings, events: Sequence[Event], chunk: int = 200, pause_s: float = 0.0) -> None:
    publisher = EventPublisher(settings)
    await publisher.start()
    try:
        for i in range(0, len(events), chunk):
            futures = [await publisher.send_nowait(e) for e in events[i : i + chunk]]
            await asyncio.gather(*futures)
            if pause_s:
                await asyncio.sleep(pause_s)
    finally:
        await publisher.stop()


async def publish_garbage(settings: KafkaSettings) -> None:
    producer = AIOKafkaProducer(**settings.client_kwargs(), acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for topic in SOURCE_TOPICS:
            await producer.send_and_wait(settings.topic(topic.value), b"\xff not json")
    finally:
        await producer.stop()


async def wait_for(cond: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await asyncio.to_thread(cond)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(every_s)


# --- the service as a real process -----------------------------------------------------------


class HistoryProcess:
    """``python -m lodestar_history`` on a free port, chDB under ``tmp``."""

    def __init__(self, kafka: KafkaSettings, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.client = HistoryClient(self.url, timeout_s=30)
        env = {
            "LODESTAR_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "LODESTAR_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "LODESTAR_KAFKA_SESSION_TIMEOUT_MS": str(kafka.session_timeout_ms),
            "LODESTAR_KAFKA_REBALANCE_TIMEOUT_MS": str(kafka.rebalance_timeout_ms),
            "LODESTAR_KAFKA_HEARTBEAT_INTERVAL_MS": str(kafka.heartbeat_interval_ms),
            "LODESTAR_HISTORY_CLICKHOUSE_DSN": f"chdb://{tmp / 'chdb'}",
            "LODESTAR_HISTORY_PORT": str(self.port),
            "LODESTAR_HISTORY_FLUSH_INTERVAL_S": "0.2",
            "LODESTAR_HISTORY_BATCH_MAX_ROWS": "500",
            "LODESTAR_HISTORY_GROUP_ID": "history-it",
            "LODESTAR_HISTORY_ALLOW_RAW_SQL": "true",
        }
        self.process = ManagedProcess(
            name=f"history-{self.port}",
            argv=[sys.executable, "-m", "lodestar_history"],
            run_dir=tmp / "run",
            log_dir=tmp / "log",
            env=env,
            cwd=Path(os.getcwd()),
        )

    def start(self) -> None:
        self.process.start(ready=self._healthy, timeout_s=30)

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def counts(self) -> dict[str, int]:
        rows = self.client.query("event_counts", WINDOW)["rows"]
        return {r["table_name"]: r["events"] for r in rows}

    def event_ids(self) -> list[str]:
        rows = self.client.query("event_ids", {**WINDOW, "limit": 1_000_000})["rows"]
        return [r["event_id"] for r in rows]

    def raw_rows(self) -> int:
        """Physical rows, duplicates included (informational: merges may have removed some)."""
        sql = " UNION ALL ".join(f"SELECT count() AS n FROM {t}" for t in (
            "instance_states", "route_decisions", "request_outcomes", "model_updates", "dead_letters"))  # fmt: skip
        return sum(r["n"] for r in self.client.sql(f"SELECT n FROM ({sql})")["rows"])


@pytest.fixture
def history(topics: KafkaSettings, tmp_path: Path) -> Iterator[HistoryProcess]:
    service = HistoryProcess(topics, tmp_path)
    service.start()
    yield service
    service.process.stop()


async def test_every_event_stored_exactly_once_across_a_sigkill(
    history: HistoryProcess, topics: KafkaSettings, events: list[Event]
) -> None:
    first = fresh(events, per_type=40)
    await publish(topics, first)
    await publish_garbage(topics)
    want = {str(e.event_id) for e in first}
    await wait_for(lambda: want <= set(history.event_ids()), 30, "the first stream")
    await wait_for(lambda: history.counts()["dead_letters"] >= 40 + len(SOURCE_TOPICS), 10, "the dead letters")
    base = sum(history.counts().values())

    second = fresh(events, per_type=600)  # 3000 events over ~3 s
    publishing = asyncio.create_task(publish(topics, second, chunk=100, pause_s=0.1))
    await wait_for(lambda: sum(history.counts().values()) > base + 100, 20, "part of the second stream", 0.05)
    history.process.kill()  # SIGKILL mid-stream: some batches inserted, some not yet committed
    assert not publishing.done(), "the kill must land while events are still being published"
    await publishing
    history.start()

    want |= {str(e.event_id) for e in second}
    await wait_for(lambda: want <= set(history.event_ids()), 40, "every event after the restart")
    ids = history.event_ids()
    assert len(ids) == len(set(ids)), "an event id is returned more than once"
    ours = [i for i in ids if i in want]
    assert sorted(ours) == sorted(want)
    counts = history.counts()
    assert counts["dead_letters"] == 40 + 600 + len(SOURCE_TOPICS)  # sample letters + our garbage, once each
    print(f"\nphysical rows {history.raw_rows()} for {sum(counts.values())} distinct events")

    metrics = (await asyncio.to_thread(httpx.get, f"{history.url}/metrics")).text
    assert 'lodestar_history_rows_inserted_total{table="route_decisions"}' in metrics
    assert "lodestar_history_consumer_up 1.0" in metrics


# --- the sink in-process, with a writer that fails on purpose --------------------------------


class MemoryWriter:
    """Records inserted event ids per table; can fail or crash after an insert on demand."""

    def __init__(self, fail_first: int = 0, crash_after_inserts: int | None = None) -> None:
        self.ids: dict[str, list[str]] = {}
        self.fail_first = fail_first
        self.crash_after_inserts = crash_after_inserts
        self.inserts = 0

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ConnectionError("ClickHouse is down (test)")
        self.ids.setdefault(table, []).extend(str(r[0]) for r in rows)
        self.inserts += 1
        if self.crash_after_inserts is not None and self.inserts >= self.crash_after_inserts:
            raise Crash("killed after the insert, before the commit")

    def all_ids(self) -> list[str]:
        return [i for ids in self.ids.values() for i in ids]


class Crash(BaseException):
    """Not an Exception: nothing in the sink catches it, as nothing survives a kill -9."""


def sink(settings: KafkaSettings, writer: MemoryWriter, metrics: HistoryMetrics | None = None) -> HistorySink:
    config = SinkConfig(
        group_id="sink-it", batch_max_rows=10_000, flush_interval_s=0.2, max_backoff_s=0.5, probe_interval_s=1.0
    )
    return HistorySink(settings, writer, metrics or HistoryMetrics(), config)


async def stop(s: HistorySink, task: asyncio.Task[None]) -> None:
    s.request_stop()
    await asyncio.wait_for(task, 10)


async def test_crash_between_insert_and_commit_rereads_the_batch(topics: KafkaSettings, events: list[Event]) -> None:
    batch = [e for e in fresh(events, per_type=20) if not isinstance(e, DeadLetter)]
    await publish(topics, batch)
    await publish_garbage(topics)
    want = sorted(str(e.event_id) for e in batch)

    crashing = MemoryWriter(crash_after_inserts=1)
    first = sink(topics, crashing)
    with pytest.raises(Crash):
        await asyncio.wait_for(first.run(), 20)
    assert 0 < len(crashing.all_ids()) <= len(want)  # stored, never committed

    writer = MemoryWriter()
    second = sink(topics, writer)
    task = asyncio.create_task(second.run())
    await wait_for(lambda: set(want) <= set(writer.all_ids()), 20, "the re-read batch")
    await wait_for(lambda: len(writer.ids.get("dead_letters", [])) >= len(SOURCE_TOPICS), 10, "the dead letters")
    await asyncio.sleep(0.5)  # letters re-sent for re-read garbage would arrive by now
    await stop(second, task)
    # The crashed batch is inserted again (a duplicate the tables' FINAL removes), nothing lost.
    assert set(crashing.all_ids()) <= set(writer.all_ids())
    assert sorted(i for t, ids in writer.ids.items() if t != "dead_letters" for i in ids) == want
    # The garbage was dead-lettered by both runs; each message keeps one letter id.
    assert len(set(writer.ids["dead_letters"])) == len(SOURCE_TOPICS)


async def test_failed_inserts_are_retried_without_losing_or_committing(
    topics: KafkaSettings, events: list[Event]
) -> None:
    batch = fresh(events, per_type=5)
    await publish(topics, batch)
    metrics = HistoryMetrics()
    writer = MemoryWriter(fail_first=3)
    s = sink(topics, writer, metrics)
    task = asyncio.create_task(s.run())
    await wait_for(lambda: sorted(writer.all_ids()) == sorted(str(e.event_id) for e in batch), 20, "the retried rows")
    await stop(s, task)
    failures = sum(m.value for m in metrics.insert_failures.collect()[0].samples if m.name.endswith("_total"))
    assert failures == 3
    assert s.status.last_error is not None and "ClickHouse is down" in s.status.last_error


async def test_sink_survives_the_broker_going_away_and_coming_back(
    local_infra: LocalInfraSettings, events: list[Event], tmp_path: Path
) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tansu").symlink_to(local_infra.tansu_path.resolve())
    local_infra = LocalInfraSettings(home=tmp_path)  # this broker's pid file and log stay in tmp_path
    port = free_port()
    name = f"history-outage-broker-{port}"
    settings = KafkaSettings(
        bootstrap_servers=start_broker(local_infra, port=port, name=name),
        topic_prefix="outage.",
        session_timeout_ms=2000,
        rebalance_timeout_ms=2000,
        heartbeat_interval_ms=500,
        request_timeout_ms=3000,
    )
    broker = broker_process(local_infra, port, name)
    metrics = HistoryMetrics()
    writer = MemoryWriter()
    s = sink(settings, writer, metrics)
    task = asyncio.create_task(s.run())
    try:
        before = fresh(events, per_type=3)
        await ensure_topics(settings)
        await publish(settings, before)
        await wait_for(lambda: {str(e.event_id) for e in before} <= set(writer.all_ids()), 20, "events before")

        broker.kill()
        await wait_for(lambda: not s.status.consumer_up, 10, "the sink to notice the outage")
        await asyncio.sleep(1)  # a few failed reconnects
        assert not task.done(), "the sink must keep running while the broker is away"
        assert metrics.consumer_failures._value.get() >= 1
        start_broker(local_infra, port=port, name=name)  # memory storage: an empty broker comes back

        after = fresh(events, per_type=3)
        await ensure_topics(settings)
        await publish(settings, after)
        await wait_for(lambda: {str(e.event_id) for e in after} <= set(writer.all_ids()), 45, "events after")
        assert not task.done()
        assert s.status.consumer_up
    finally:
        try:
            await stop(s, task)
        finally:
            broker.stop()


def test_the_client_raises_the_services_reason_with_its_status(history: HistoryProcess) -> None:
    """What ``lodestar report``, ``replay`` and ``history query`` print when the service
    refuses: its error message (the ``error.message`` every Lodestar service answers), not a
    body dump."""
    cases = [
        (lambda: history.client.query("nope"), 404, "HTTP 404: unknown query 'nope'"),
        (lambda: history.client.query("event_counts", {"colour": "red"}), 400, "HTTP 400: "),
        (lambda: history.client.sql("DROP TABLE route_decisions"), 400, "HTTP 400: refused: "),
    ]
    for call, status, start in cases:
        with pytest.raises(HistoryClientError) as caught:
            call()
        assert caught.value.status_code == status
        assert str(caught.value).startswith(start), str(caught.value)
        assert "{" not in str(caught.value)  # the message, not the JSON around it
    with pytest.raises(HistoryClientError) as unreachable:
        HistoryClient("http://127.0.0.1:1", timeout_s=2).health()
    assert str(unreachable.value).startswith("no history service at http://127.0.0.1:1 ")
    assert unreachable.value.status_code is None
