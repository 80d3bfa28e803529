"""The model topic as a store: its newest :class:`ModelUpdate`, read from the earliest offset
until the topic has been idle for ``idle_s`` (tansu's end offsets are wrong, so "read to the
end" is "read until nothing more comes"); and putting one update (back) on it."""

from __future__ import annotations

from lodestar.bus.admin import ensure_topics
from lodestar.bus.consume import EventConsumer
from lodestar.bus.publish import EventPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar_schemas.events import ModelUpdate
from lodestar_schemas.topics import TOPICS, TopicName


async def newest_model_update(kafka: KafkaSettings, idle_s: float = 1.0) -> ModelUpdate | None:
    """The highest-version update on the model topic; None when it holds none."""
    reader = EventConsumer(kafka, [TopicName.MODEL_UPDATES], group_id=None, auto_offset_reset="earliest")
    await reader.start()
    newest: ModelUpdate | None = None
    try:
        async for batch in reader.until_idle(idle_s):
            for rec in batch:
                if isinstance(rec.event, ModelUpdate) and (newest is None or rec.event.version > newest.version):
                    newest = rec.event
    finally:
        await reader.stop()
    return newest


async def put_model_update(kafka: KafkaSettings, update: ModelUpdate) -> None:
    """Publish ``update`` on the model topic (created if missing) and wait for the ack."""
    await ensure_topics(kafka, TOPICS)
    publisher = EventPublisher(kafka)
    await publisher.start()
    try:
        await publisher.send(update)
    finally:
        await publisher.stop()
