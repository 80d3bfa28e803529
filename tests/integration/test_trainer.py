"""The trainer service on the real broker: joins decisions with outcomes produced by a real
simulation, publishes model versions that the router's decoder accepts, and after a SIGKILL
resumes from the newest published model without reusing a version number."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sim_events import simulated_events

from lodestar.bus.consume import EventConsumer
from lodestar.bus.publish import EventPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar.learn.blob import blob_sha256, decode_blob
from lodestar.localinfra.ports import free_port
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar_schemas.events import Event, ModelUpdate
from lodestar_schemas.topics import TopicName

pytestmark = pytest.mark.integration


async def _publish(settings: KafkaSettings, events: list[Event]) -> None:
    pub = EventPublisher(settings)
    await pub.start()
    try:
        futures = [await pub.send_nowait(e) for e in events]
        await asyncio.gather(*futures)
    finally:
        await pub.stop()


async def _models(
    settings: KafkaSettings, done: Callable[[list[ModelUpdate]], bool], timeout_s: float
) -> list[ModelUpdate]:
    """Model updates from the topic's beginning until ``done(updates)`` or ``timeout_s``."""
    reader = EventConsumer(settings, [TopicName.MODEL_UPDATES], group_id=None)
    await reader.start()
    got: list[ModelUpdate] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not done(got) and time.monotonic() < deadline:
            got.extend(r.event for r in await reader.poll(timeout_ms=300) if isinstance(r.event, ModelUpdate))
    finally:
        await reader.stop()
    return got


@pytest.fixture
def trainer_process(topics: KafkaSettings, local_infra: LocalInfraSettings, tmp_path: Path) -> Iterator[ManagedProcess]:
    env = {
        "LODESTAR_KAFKA_BOOTSTRAP_SERVERS": topics.bootstrap_servers,
        "LODESTAR_KAFKA_TOPIC_PREFIX": topics.topic_prefix,
        "LODESTAR_KAFKA_SESSION_TIMEOUT_MS": "2000",
        "LODESTAR_KAFKA_REBALANCE_TIMEOUT_MS": "2000",
        "LODESTAR_KAFKA_HEARTBEAT_INTERVAL_MS": "500",
        "LODESTAR_TRAINER_PORT": str(free_port()),
        "LODESTAR_TRAINER_PUBLISH_INTERVAL_S": "1.0",
        "LODESTAR_TRAINER_STEPS_PER_PUBLISH": "5",
        "PYTHONUNBUFFERED": "1",
    }
    proc = ManagedProcess(
        name=f"trainer-{os.getpid()}-{topics.topic_prefix.strip('.')}",
        argv=[sys.executable, "-m", "lodestar_trainer"],
        run_dir=tmp_path / "run",
        log_dir=tmp_path / "log",
        env=env,
    )
    yield proc
    proc.stop()


async def test_trainer_publishes_versions_and_resumes_after_sigkill(
    topics: KafkaSettings, trainer_process: ManagedProcess
) -> None:
    events = simulated_events()
    await _publish(topics, events)
    trainer_process.start()
    first = await _models(topics, lambda ms: len(ms) >= 2, timeout_s=60)
    assert len(first) >= 2, trainer_process.log_tail()
    versions = [m.version for m in first]
    assert versions == sorted(versions) and versions[0] == 1 and len(set(versions)) == len(versions)
    for m in first:
        assert blob_sha256(m.weights) == m.weights_sha256
        state = decode_blob(m.weights)  # the router's validation accepts it
        assert state.version == m.version and state.trained_samples > 100
        assert m.metrics["val_n"] > 0

    trainer_process.kill()
    newest = max(versions)
    trainer_process.start()
    await _publish(topics, simulated_events(200))
    # a trainer that lost count would publish 1, 2, … again: five versions past the newest
    # show it resumed, and every reuse among them would be seen
    after = await _models(topics, lambda ms: sum(m.version > newest for m in ms) >= 5, timeout_s=60)
    later = sorted({m.version for m in after if m.version > newest})
    assert len(later) >= 5, trainer_process.log_tail()
    all_versions = [m.version for m in after]
    assert len(all_versions) == len(set(all_versions)), "a version number was published twice"
    assert '"trainer_resumed"' in trainer_process.log_tail(20000)
