"""A trainer told to stop while its broker is down stops: it used to retry topic setup for
ever, deaf to SIGTERM and SIGINT (``lodestar trainer`` with no broker could only be killed)."""

from __future__ import annotations

import asyncio

import pytest

from lodestar.bus.settings import KafkaSettings
from lodestar.localinfra.ports import free_port
from lodestar.serving import ensure_topics_retrying
from lodestar_schemas.topics import TopicName, topic_spec
from lodestar_trainer.service import TrainerService
from lodestar_trainer.settings import TrainerSettings

pytestmark = pytest.mark.timeout(30)


def _nowhere() -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")  # nothing listens there


async def test_a_stop_while_the_broker_is_down_ends_the_run() -> None:
    service = TrainerService.build(TrainerSettings(port=0), _nowhere())
    stop = asyncio.Event()
    run = asyncio.create_task(service.run(stop))
    await asyncio.sleep(1.5)  # past the first failed attempts, into the backoff
    assert not run.done()
    stop.set()
    await asyncio.wait_for(run, 3.0)  # the backoff reaches 5 s: the stop must cut it short


async def test_topic_setup_says_whether_it_was_stopped() -> None:
    stop = asyncio.Event()
    stop.set()
    assert await ensure_topics_retrying(_nowhere(), (topic_spec(TopicName.MODEL_UPDATES),), stop) is False
