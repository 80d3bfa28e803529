"""Falling behind real time is recorded and reported, never silent, and warnings are throttled."""

from __future__ import annotations

import structlog
from structlog.testing import capture_logs

from lodestar.emulator.lag import LagMonitor
from lodestar.emulator.metrics import InstanceMetrics


def _monitor() -> LagMonitor:
    return LagMonitor(
        InstanceMetrics(max_model_len=1024),
        structlog.get_logger("test"),
        warn_after_s=0.05,
        report_every_s=5.0,
        time_scale=2.0,
    )


def test_small_lag_is_recorded_without_warning() -> None:
    mon = _monitor()
    with capture_logs() as logs:
        assert not mon.observe_step(0.01, now_wall_s=100.0)
    assert logs == []
    assert mon.metrics.step_lag.count == 1
    assert mon.metrics.late_steps == 0
    assert mon.last_lag_s == 0.01


def test_late_steps_warn_once_per_interval_with_the_worst_lag() -> None:
    mon = _monitor()
    with capture_logs() as logs:
        assert mon.observe_step(0.2, now_wall_s=100.0)
        assert not mon.observe_step(0.9, now_wall_s=101.0)  # within the interval: counted only
        assert not mon.observe_step(0.3, now_wall_s=102.0)
        assert mon.observe_step(0.1, now_wall_s=105.5)
    assert [entry["log_level"] for entry in logs] == ["warning", "warning"]
    assert logs[0]["max_lag_s"] == 0.2 and logs[0]["late_steps"] == 1
    assert logs[1]["max_lag_s"] == 0.9 and logs[1]["late_steps"] == 3
    assert logs[1]["time_scale"] == 2.0
    assert mon.metrics.late_steps == 4


def test_early_wakeups_count_as_zero_lag() -> None:
    mon = _monitor()
    mon.observe_step(-0.001, now_wall_s=1.0)
    mon.observe_delivery(-0.5)
    assert mon.metrics.step_lag.total == 0.0
    assert mon.metrics.delivery_lag.total == 0.0
