"""Create Lodestar's topics idempotently."""

from __future__ import annotations

import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from lodestar.bus.settings import KafkaSettings
from lodestar_schemas.topics import TOPICS, TopicSpec


async def ensure_topics(settings: KafkaSettings, specs: tuple[TopicSpec, ...] = TOPICS) -> list[str]:
    """Create any missing topic of ``specs`` (with the settings' prefix); returns the full names."""
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=spec.full_name(settings.topic_prefix),
                num_partitions=spec.partitions,
                replication_factor=1,
                topic_configs=dict(spec.config),
            )
            for spec in specs
            if spec.full_name(settings.topic_prefix) not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):  # another service created it first
                await admin.create_topics(wanted)
        return [spec.full_name(settings.topic_prefix) for spec in specs]
    finally:
        await admin.close()
