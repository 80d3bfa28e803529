"""Falling behind real time: record how late engine steps are applied, warn when it matters.

The driver reports, for each engine step, how many wall seconds after its due time it was
applied (the event loop was busy). Virtual-time results stay exact when late (the engine
computes them), but clients see tokens late, so lag is never silent: every step feeds the
``lodestar_emulator_step_lag_seconds`` histogram, and when a step is later than
``warn_after_s`` a warning is logged at most once per ``report_every_s`` wall seconds with the
worst lag and the number of late steps since the last warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lodestar.emulator.metrics import InstanceMetrics


@dataclass
class LagMonitor:
    metrics: InstanceMetrics
    log: Any  # a structlog bound logger
    warn_after_s: float = 0.05
    report_every_s: float = 5.0
    time_scale: float = 1.0
    last_lag_s: float = 0.0
    _window_max_s: float = field(default=0.0, init=False)
    _window_late: int = field(default=0, init=False)
    _last_warning_s: float | None = field(default=None, init=False)

    def observe_step(self, lag_s: float, now_wall_s: float) -> bool:
        """Record one step applied ``lag_s`` wall seconds late; True if a warning was logged."""
        lag_s = max(lag_s, 0.0)
        self.last_lag_s = lag_s
        self.metrics.step_lag.observe(lag_s)
        if lag_s <= self.warn_after_s:
            return False
        self.metrics.late_steps += 1
        self._window_late += 1
        self._window_max_s = max(self._window_max_s, lag_s)
        if self._last_warning_s is not None and now_wall_s - self._last_warning_s < self.report_every_s:
            return False
        self.log.warning(
            "emulator is behind real time",
            max_lag_s=round(self._window_max_s, 4),
            late_steps=self._window_late,
            threshold_s=self.warn_after_s,
            time_scale=self.time_scale,
            hint="raise --time-scale or serve fewer streams per process",
        )
        self._last_warning_s = now_wall_s
        self._window_max_s = 0.0
        self._window_late = 0
        return True

    def observe_delivery(self, lag_s: float) -> None:
        """A token chunk written ``lag_s`` wall seconds after its token was due."""
        self.metrics.delivery_lag.observe(max(lag_s, 0.0))
