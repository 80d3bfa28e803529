"""The two topics the router follows, each in its own asyncio task with its own consumer.

- instance states: no consumer group, from the latest event (the collector publishes every
  instance several times a second, so history is useless), applied to the
  :class:`~lodestar.policy.directory.InstanceDirectory`;
- model updates: no consumer group, from the beginning of the compacted topic, so a (re)started
  replica gets the newest model; every replica reads independently. Each update is checked in
  a worker thread (hash, blob decode: pure functions) and installed on the event loop with
  one reference swap, so requests are never stalled. Undecodable updates count as rejected.

A consumer that fails (broker down, topic missing) is restarted with capped backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from lodestar.bus.consume import EventConsumer
from lodestar.bus.settings import KafkaSettings
from lodestar.policy.directory import InstanceDirectory
from lodestar_router.dispatch import Dispatcher
from lodestar_router.model_updates import ModelRejected, ModelStore, check_update
from lodestar_schemas.events import Event, InstanceState, ModelUpdate
from lodestar_schemas.topics import TopicName

log = structlog.get_logger(__name__)

_POLL_MS = 200
_MAX_BACKOFF_S = 5.0


class Feed:
    """Consumes one topic forever, handing each decoded event to ``handle``."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: TopicName,
        offset_reset: str,
        handle: Callable[[Event], Awaitable[None]],
        on_undecodable: Callable[[int], None] | None = None,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.offset_reset = offset_reset
        self.handle = handle
        self.on_undecodable = on_undecodable
        self.received = 0
        self.undecodable = 0
        self.restarts = 0

    async def run(self) -> None:
        backoff = 0.25
        while True:
            consumer = EventConsumer(self.kafka, [self.topic], group_id=None, auto_offset_reset=self.offset_reset)
            try:
                await consumer.start()
                log.info("feed_started", topic=self.kafka.topic(self.topic.value), offset_reset=self.offset_reset)
                backoff = 0.25
                seen_bad = 0
                while True:
                    batch = await consumer.poll(timeout_ms=_POLL_MS)
                    bad = consumer.stats.dead_lettered - seen_bad
                    if bad:
                        seen_bad += bad
                        self.undecodable += bad
                        if self.on_undecodable is not None:
                            self.on_undecodable(bad)
                    for received in batch:
                        self.received += 1
                        await self.handle(received.event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # aiokafka raises a wide variety while the broker is away
                self.restarts += 1
                log.warning(
                    "feed_failed", topic=self.topic.value, error=f"{type(exc).__name__}: {exc}", retry_s=backoff
                )
            finally:
                await consumer.stop()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)


StateListener = Callable[[InstanceState, float, float], object]


def instance_state_feed(
    kafka: KafkaSettings, directory: InstanceDirectory, listeners: list[StateListener] | None = None
) -> Feed:
    """Instance states into ``directory``, then to each of ``listeners`` (``(state, monotonic
    now, wall now)``; read at each event, so listeners may be added after the feed is built: a
    gateway that embeds the router follows the topic through this one consumer)."""
    also = listeners if listeners is not None else []

    async def handle(event: Event) -> None:
        if isinstance(event, InstanceState):
            now, wall = time.monotonic(), time.time()
            directory.apply(event, now, wall)
            for listener in also:
                listener(event, now, wall)

    return Feed(kafka, TopicName.INSTANCE_STATE, "latest", handle)


class ModelInstaller:
    """Checks each model update off the loop, keeps it in the store, offers it to the policy."""

    def __init__(self, store: ModelStore, dispatcher: Dispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher

    async def offer(self, update: ModelUpdate) -> bool:
        """True if the update was valid and newer than the newest held."""
        try:
            state = await asyncio.to_thread(check_update, update)
        except ModelRejected as exc:
            self.store.reject(update.version, exc.reason, exc.message)
            log.error(
                "model_update_rejected",
                version=update.version,
                reason=exc.reason,
                error=exc.message,
                event_id=str(update.event_id),
                kept_version=self.dispatcher.model_version,
            )
            return False
        if not self.store.accept(state):
            log.info("model_update_stale", version=state.version, newest=self.store.latest_version)
            return False
        used = self.dispatcher.install_model(state)
        log.info(
            "model_update_accepted",
            version=state.version,
            in_use=used,
            active_version=self.dispatcher.model_version,
            policy=self.dispatcher.policy.name,
            trained_samples=state.trained_samples,
            metrics=dict(state.metrics),
        )
        return True

    def undecodable(self, count: int) -> None:
        for _ in range(count):
            self.store.reject(None, "undecodable", "the event could not be decoded (see event_dead_lettered)")
        log.error(
            "model_update_rejected", reason="undecodable", count=count, kept_version=self.dispatcher.model_version
        )


def model_update_feed(kafka: KafkaSettings, installer: ModelInstaller) -> Feed:
    async def handle(event: Event) -> None:
        if isinstance(event, ModelUpdate):
            await installer.offer(event)

    return Feed(kafka, TopicName.MODEL_UPDATES, "earliest", handle, on_undecodable=installer.undecodable)
