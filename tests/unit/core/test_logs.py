"""Which aiokafka lines the services keep."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from lodestar.logs import quiet_kafka_client

NAMES = ("", "aiokafka", "aiokafka.consumer.fetcher")  # "": the root logger


@pytest.fixture
def restore_levels() -> Iterator[None]:
    levels = {name: logging.getLogger(name).level for name in NAMES}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("restore_levels")
def test_the_kafka_client_keeps_position_resets_and_drops_other_info_lines() -> None:
    logging.getLogger().setLevel(logging.INFO)
    quiet_kafka_client()
    assert not logging.getLogger("aiokafka.conn").isEnabledFor(logging.INFO)
    assert not logging.getLogger("aiokafka.consumer.group_coordinator").isEnabledFor(logging.INFO)
    assert logging.getLogger("aiokafka.consumer.group_coordinator").isEnabledFor(logging.WARNING)
    # "Fetch offset 48 is out of range for partition ..., resetting offset"
    assert logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.INFO)


@pytest.mark.usefixtures("restore_levels")
def test_a_process_logging_only_errors_gets_no_kafka_client_info_or_warnings() -> None:
    logging.getLogger().setLevel(logging.ERROR)
    quiet_kafka_client()
    assert not logging.getLogger("aiokafka.consumer.fetcher").isEnabledFor(logging.INFO)
    assert not logging.getLogger("aiokafka.conn").isEnabledFor(logging.WARNING)
    assert logging.getLogger("aiokafka.conn").isEnabledFor(logging.ERROR)
