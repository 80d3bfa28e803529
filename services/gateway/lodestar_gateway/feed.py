"""The instance-state feed: one asyncio task consuming the instance-state topic (no consumer
group, from the latest event: the collector publishes every instance several times a second,
so history is useless) into the :class:`~lodestar_gateway.fleet.LocalFleet`.

A consumer that fails (broker down, topic missing) is restarted with capped backoff; the
gateway keeps serving meanwhile (through the router, and locally with what it knew).
"""

from __future__ import annotations

import asyncio
import time

import structlog

from lodestar.bus.consume import EventConsumer
from lodestar.bus.settings import KafkaSettings
from lodestar_gateway.fleet import LocalFleet
from lodestar_schemas.events import InstanceState
from lodestar_schemas.topics import TopicName

log = structlog.get_logger(__name__)

_POLL_MS = 200
_MAX_BACKOFF_S = 5.0


class InstanceStateFeed:
    def __init__(self, kafka: KafkaSettings, fleet: LocalFleet) -> None:
        self.kafka = kafka
        self.fleet = fleet
        self.received = 0
        self.undecodable = 0
        self.restarts = 0

    async def run(self) -> None:
        backoff = 0.25
        while True:
            consumer = EventConsumer(self.kafka, [TopicName.INSTANCE_STATE], group_id=None, auto_offset_reset="latest")
            undecodable_before = self.undecodable
            try:
                await consumer.start()
                log.info("feed_started", topic=self.kafka.topic(TopicName.INSTANCE_STATE.value))
                backoff = 0.25
                while True:
                    batch = await consumer.poll(timeout_ms=_POLL_MS)
                    self.undecodable = undecodable_before + consumer.stats.dead_lettered
                    now, wall = time.monotonic(), time.time()
                    for received in batch:
                        self.received += 1
                        if isinstance(received.event, InstanceState):
                            self.fleet.apply(received.event, now, wall)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # aiokafka raises a wide variety while the broker is away
                self.restarts += 1
                log.warning("feed_failed", error=f"{type(exc).__name__}: {exc}", retry_s=backoff)
            finally:
                await consumer.stop()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)
