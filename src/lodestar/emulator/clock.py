"""Virtual (emulated) time against the event loop's monotonic clock.

``virtual = (wall - start) / time_scale``: with ``time_scale`` S every emulated second takes S
wall seconds, so a small machine can keep up with a fast GPU while metrics still report what
the GPU would. One clock is shared by every instance of a process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class VirtualClock:
    start_wall_s: float
    time_scale: float
    wall_time: Callable[[], float]

    def __post_init__(self) -> None:
        if self.time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale}")

    def now_s(self) -> float:
        """Current virtual time."""
        return (self.wall_time() - self.start_wall_s) / self.time_scale

    def virtual_s(self, wall_s: float) -> float:
        return (wall_s - self.start_wall_s) / self.time_scale

    def wall_s(self, virtual_s: float) -> float:
        """Wall-clock time (in ``wall_time``'s clock) at which ``virtual_s`` happens."""
        return self.start_wall_s + virtual_s * self.time_scale

    def wall_duration_s(self, virtual_duration_s: float) -> float:
        return virtual_duration_s * self.time_scale
