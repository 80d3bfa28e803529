"""The real-time driver on a real engine: delivery timing, completion, abort, rejection, lag."""

from __future__ import annotations

import asyncio
import time

import pytest
import structlog
from structlog.testing import capture_logs

from lodestar.emulator.clock import VirtualClock
from lodestar.emulator.driver import EngineDriver
from lodestar.emulator.lag import LagMonitor
from lodestar.emulator.metrics import InstanceMetrics
from lodestar.emulator.stream import RequestState
from lodestar.engine.engine import Engine, RequestRejectedError
from lodestar.engine.profiles import instance_profile


def _driver(time_scale: float = 1.0, hardware: str = "H100-SXM") -> EngineDriver:
    loop = asyncio.get_running_loop()
    profile = instance_profile(hardware, "llama-3-8b")
    metrics = InstanceMetrics(max_model_len=profile.context_limit)
    lag = LagMonitor(metrics, structlog.get_logger("test"), warn_after_s=0.03, report_every_s=60.0)
    clock = VirtualClock(loop.time(), time_scale, loop.time)
    return EngineDriver(Engine(profile), clock, metrics, lag)


async def _collect(driver: EngineDriver, state: RequestState) -> list[tuple[int, float, float]]:
    """(tokens, virtual time of the newest, wall time seen) after every wake-up."""
    seen: list[tuple[int, float, float]] = []
    loop = asyncio.get_running_loop()
    while not state.done:
        await asyncio.wait_for(state.wait(), timeout=5)
        if state.last_token_s is not None:
            seen.append((state.tokens, state.last_token_s, loop.time()))
    return seen


@pytest.mark.parametrize("time_scale", [1.0, 3.0])
async def test_tokens_arrive_in_order_never_before_their_step_ends(time_scale: float) -> None:
    driver = _driver(time_scale)
    driver.start()
    try:
        state = RequestState("a", prompt_tokens=40, max_tokens=12, stream=True)
        driver.submit(state, [])
        seen = await _collect(driver, state)
    finally:
        await driver.stop()
    assert state.tokens == 12 and state.finished is not None
    assert [n for n, _, _ in seen] == sorted(n for n, _, _ in seen)
    for _, virtual_s, wall_s in seen:
        assert wall_s >= driver.clock.wall_s(virtual_s) - 1e-6
    done = state.finished
    assert done.output_tokens == 12 and done.prompt_tokens == 40
    m = driver.metrics
    assert (m.prompt_tokens, m.generation_tokens, m.finished["length"]) == (40, 12, 1)
    assert m.ttft.count == 1 and m.ttft.total == pytest.approx(done.ttft_s)
    assert m.itl.count == 11 and m.itl.total == pytest.approx(done.finish_s - done.first_token_s)
    assert m.e2e.total == pytest.approx(done.e2e_s)


async def test_time_scale_stretches_wall_time_not_emulated_time() -> None:
    results = {}
    for scale in (1.0, 3.0):
        driver = _driver(scale)
        driver.start()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        state = RequestState("a", prompt_tokens=40, max_tokens=10, stream=True)
        driver.submit(state, [])
        await _collect(driver, state)
        await driver.stop()
        assert state.finished is not None
        results[scale] = (state.finished.e2e_s, loop.time() - t0)
    (v1, w1), (v3, w3) = results[1.0], results[3.0]
    assert v3 == pytest.approx(v1, rel=0.05)
    assert w3 / w1 > 2.0


async def test_abort_takes_the_request_out_and_counts_it() -> None:
    driver = _driver()
    driver.start()
    try:
        state = RequestState("a", prompt_tokens=40, max_tokens=1000, stream=True)
        driver.submit(state, [])
        await asyncio.wait_for(state.wait(), timeout=5)
        assert driver.abort(state)
        assert not driver.abort(state)
        assert not driver.engine.has_work()
        assert driver.metrics.finished["abort"] == 1
        assert list(driver.active()) == []
    finally:
        await driver.stop()


async def test_a_request_longer_than_the_context_is_rejected_and_not_registered() -> None:
    driver = _driver(hardware="A10G")
    limit = driver.engine.profile.context_limit
    state = RequestState("a", prompt_tokens=limit - 10, max_tokens=11, stream=False)
    with pytest.raises(RequestRejectedError):
        driver.submit(state, [])
    assert list(driver.active()) == []
    assert not driver.engine.has_work()


async def test_blocking_the_loop_is_reported_as_lag() -> None:
    driver = _driver()
    driver.start()
    try:
        state = RequestState("a", prompt_tokens=40, max_tokens=200, stream=True)
        driver.submit(state, [])
        await asyncio.wait_for(state.wait(), timeout=5)
        with capture_logs() as logs:
            time.sleep(0.15)  # noqa: ASYNC251 -- on purpose: the loop cannot run, steps fall due
            await asyncio.wait_for(state.wait(), timeout=5)
    finally:
        await driver.stop()
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert warnings and warnings[0]["max_lag_s"] >= 0.1
    assert driver.metrics.late_steps >= 1
    assert driver.lag.last_lag_s >= 0.0


async def test_speed_factor_and_stall_change_emulated_times() -> None:
    driver = _driver()
    driver.start()
    try:
        base = RequestState("a", prompt_tokens=40, max_tokens=10, stream=True)
        driver.submit(base, [])
        await _collect(driver, base)
        driver.set_speed_factor(4.0)
        slow = RequestState("b", prompt_tokens=40, max_tokens=10, stream=True)
        driver.submit(slow, [])
        await _collect(driver, slow)
        driver.set_speed_factor(1.0)
        until = driver.stall(0.2)
        stalled = RequestState("c", prompt_tokens=40, max_tokens=2, stream=True)
        driver.submit(stalled, [])
        await _collect(driver, stalled)
    finally:
        await driver.stop()
    assert base.finished is not None and slow.finished is not None and stalled.finished is not None
    assert slow.finished.tpot_s is not None and base.finished.tpot_s is not None
    assert slow.finished.tpot_s / base.finished.tpot_s > 3.0
    assert stalled.finished.first_token_s >= until
