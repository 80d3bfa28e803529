"""An emulated fleet in this test's event loop, on real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import structlog

from lodestar.cluster.spec import load_cluster
from lodestar.emulator.fleet import EmulatedFleet
from lodestar.emulator.settings import EmulatorSettings


@pytest.fixture
async def emulated() -> AsyncIterator[EmulatedFleet]:
    """``mini-hetero2`` (h100-sxm-0, a10g-0) on free ports."""
    fleet = EmulatedFleet.build(load_cluster("mini-hetero2").instances(), 0, EmulatorSettings(), structlog.get_logger())
    fleet.start()
    try:
        yield fleet
    finally:
        await fleet.stop()
