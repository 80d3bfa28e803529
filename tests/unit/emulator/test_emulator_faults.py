"""Fault bodies and the injector's seeded decisions (on a real engine, driver and server)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import structlog
from pydantic import TypeAdapter, ValidationError

from lodestar.emulator.clock import VirtualClock
from lodestar.emulator.driver import EngineDriver
from lodestar.emulator.faults import (
    DropFault,
    FailFault,
    FaultInjector,
    FaultSpec,
    GoAwayFault,
    RestoreFault,
    SlowdownFault,
    StallFault,
)
from lodestar.emulator.lag import LagMonitor
from lodestar.emulator.metrics import InstanceMetrics
from lodestar.emulator.server import InstanceServer
from lodestar.emulator.stream import RequestState
from lodestar.engine.engine import Engine
from lodestar.engine.profiles import instance_profile
from lodestar.openai_errors import invalid_body

SPEC: TypeAdapter[FaultSpec] = TypeAdapter(FaultSpec)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"kind": "slowdown", "factor": 4}, SlowdownFault),
        ({"kind": "slowdown", "factor": 2, "duration_s": 1.5}, SlowdownFault),
        ({"kind": "stall", "duration_s": 2}, StallFault),
        ({"kind": "fail", "fraction": 0.5}, FailFault),
        ({"kind": "drop", "fraction": 1}, DropFault),
        ({"kind": "go_away"}, GoAwayFault),
        ({"kind": "go_away", "duration_s": 3}, GoAwayFault),
        ({"kind": "restore"}, RestoreFault),
    ],
)
def test_valid_fault_bodies(body: dict[str, Any], kind: type) -> None:
    assert isinstance(SPEC.validate_python(body), kind)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"kind": "slowdown", "factor": 0}, "slowdown.factor"),
        ({"kind": "slowdown"}, "slowdown.factor"),
        ({"kind": "stall"}, "stall.duration_s"),
        ({"kind": "stall", "duration_s": -1}, "stall.duration_s"),
        ({"kind": "fail", "fraction": 1.5}, "fail.fraction"),
        ({"kind": "drop", "fraction": -0.1}, "drop.fraction"),
        ({"kind": "go_away", "duration_s": 0}, "go_away.duration_s"),
        ({"kind": "restore", "extra": 1}, "restore.extra"),
        ({"kind": "meteor"}, "kind"),
        ({"fraction": 0.5}, "kind"),
    ],
)
def test_invalid_fault_bodies_are_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(ValidationError) as info:
        SPEC.validate_python(body)
    err = invalid_body(info.value.errors())
    assert err.status == 400
    assert err.param == param


def _injector(seed: str = "s") -> FaultInjector:
    loop = asyncio.get_running_loop()
    profile = instance_profile("H100-SXM", "llama-3-8b")
    metrics = InstanceMetrics(max_model_len=profile.context_limit)
    log = structlog.get_logger("test")
    clock = VirtualClock(loop.time(), 1.0, loop.time)
    driver = EngineDriver(Engine(profile), clock, metrics, LagMonitor(metrics, log))
    server = InstanceServer(app=None, host="127.0.0.1", port=0, name="t")
    return FaultInjector(driver, server, clock, metrics, seed, log)


async def test_fail_decisions_are_seeded_and_follow_the_fraction() -> None:
    a, b = _injector("x"), _injector("x")
    a.fail(0.3)
    b.fail(0.3)
    da = [a.should_fail() for _ in range(200)]
    assert da == [b.should_fail() for _ in range(200)]
    assert 30 <= sum(da) <= 90
    assert a.metrics.injected_failures == sum(da)
    a.fail(1.0)
    assert all(a.should_fail() for _ in range(20))
    a.restore()
    assert not any(a.should_fail() for _ in range(20))


async def test_drops_fall_strictly_inside_the_stream() -> None:
    inj = _injector()
    inj.drop_streams(1.0)
    for max_tokens in (2, 3, 10, 100):
        for k in range(20):
            state = RequestState(f"r{max_tokens}-{k}", 10, max_tokens, stream=True)
            inj.arm_drop(state)
            assert state.drop_after is not None and 1 <= state.drop_after <= max_tokens - 1
    one = RequestState("one", 10, 1, stream=True)
    inj.arm_drop(one)
    assert one.drop_after is None  # no "middle" to cut
    whole = RequestState("whole", 10, 50, stream=False)
    inj.arm_drop(whole)
    assert whole.drop_after is None  # only streams are dropped


async def test_timed_faults_restore_themselves() -> None:
    inj = _injector()
    inj.slow_down(3.0, duration_s=0.05)
    inj.fail(1.0, duration_s=0.05)
    status = inj.status()
    assert status.speed_factor == 3.0 and status.fail_fraction == 1.0
    assert set(status.ends_s) == {"slowdown", "fail"}
    await asyncio.sleep(0.1)
    status = inj.status()
    assert status.speed_factor == 1.0 and status.fail_fraction == 0.0 and status.ends_s == {}


async def test_stall_is_reported_until_it_ends() -> None:
    inj = _injector()
    inj.stall(0.05)
    assert inj.status().stalled_until_s is not None
    await asyncio.sleep(0.08)
    assert inj.status().stalled_until_s is None
