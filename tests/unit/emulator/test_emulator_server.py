"""Listeners on real sockets: all-or-nothing fleet binding, go-away and come-back (also when
the port was taken meanwhile), and construction errors. ``bind_socket`` itself (busy and
unbindable ports) is tested with the ports, in ``tests/unit/core/test_free_ports.py``."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

from lodestar.cluster.spec import load_cluster
from lodestar.emulator.clock import VirtualClock
from lodestar.emulator.fleet import EmulatedFleet
from lodestar.emulator.settings import EmulatorSettings
from lodestar.localinfra.ports import PortInUseError, bind_socket, free_port_block

LOG = structlog.get_logger("test")


def test_free_port_block_is_consecutive_and_free() -> None:
    base = free_port_block(3)
    socks = [bind_socket("127.0.0.1", base + k, "t") for k in range(3)]
    for s in socks:
        s.close()


def test_the_clock_rejects_a_non_positive_scale() -> None:
    with pytest.raises(ValueError, match="time_scale"):
        VirtualClock(0.0, 0.0, lambda: 0.0)


async def test_fleet_build_rejects_no_instances_and_ports_past_65535() -> None:
    specs = load_cluster("mini-hetero2").instances()
    with pytest.raises(ValueError, match="at least one"):
        EmulatedFleet.build([], 8001, EmulatorSettings(), LOG)
    with pytest.raises(ValueError, match="go past 65535"):
        EmulatedFleet.build(specs, 65535, EmulatorSettings(), LOG)


async def test_a_fleet_binds_every_port_or_none() -> None:
    specs = load_cluster("mini-hetero2").instances()
    base = free_port_block(2)
    blocker = bind_socket("127.0.0.1", base + 1, "someone else")
    try:
        fleet = EmulatedFleet.build(specs, base, EmulatorSettings(), LOG)
        with pytest.raises(PortInUseError, match=f"a10g-0 port {base + 1} "):
            fleet.start()
        bind_socket("127.0.0.1", base, "again").close()  # the first port was released
    finally:
        blocker.close()


async def test_go_away_and_come_back_on_a_live_instance() -> None:
    specs = load_cluster("mini-hetero2").instances()[:1]
    fleet = EmulatedFleet.build(specs, 0, EmulatorSettings(), LOG)
    fleet.start()
    instance = next(iter(fleet.instances.values()))
    url = instance.url
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"{url}/health")).status_code == 200
            instance.faults.go_away()
            assert instance.faults.status().gone
            with pytest.raises(httpx.ConnectError):
                async with httpx.AsyncClient(timeout=5) as fresh:
                    await fresh.get(f"{url}/health")
            # Someone takes the port meanwhile: coming back fails, is logged, and stays gone.
            squatter = bind_socket("127.0.0.1", instance.server.port, "squatter")
            with capture_logs() as logs:
                assert not instance.faults.come_back()
            squatter.close()
            assert any(e["event"] == "fault: cannot come back" for e in logs)
            assert instance.faults.status().gone
            instance.faults.restore()
            assert not instance.faults.status().gone
            async with httpx.AsyncClient(timeout=5) as fresh:
                assert (await fresh.get(f"{url}/health")).status_code == 200
    finally:
        await fleet.stop()
    await asyncio.sleep(0)
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", instance.server.port))  # stopped: the port is free again
