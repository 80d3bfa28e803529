"""Per-instance health state machine. Pure; one :class:`HealthTracker` per instance.

States and transitions (``N`` = ``threshold``):

- **joining** (not healthy, model info needed): a new instance until its first successful
  scrape. A router must not use an instance it has never read.
- **healthy**: after a success. Failures 1 … N-1 keep it healthy (their count is reported);
  the N-th consecutive failure makes it **unhealthy**.
- **unhealthy** (model info needed again): stays so on failures; the next success makes it
  healthy, and ``/v1/models`` is read again (the instance may have restarted with another
  model or context length).

A failure is anything that leaves no fresh snapshot: timeout, connection error, non-200
status, unparseable text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Transition(StrEnum):
    NONE = "none"
    BECAME_HEALTHY = "became_healthy"
    BECAME_UNHEALTHY = "became_unhealthy"


@dataclass
class HealthTracker:
    """Mutable health of one instance; not thread-safe (one scrape task owns it)."""

    threshold: int
    consecutive_failures: int = 0
    healthy: bool = False
    needs_model_info: bool = True
    ever_succeeded: bool = False

    def __post_init__(self) -> None:
        if self.threshold < 1:
            raise ValueError(f"failure threshold must be >= 1, got {self.threshold}")

    def success(self) -> Transition:
        was = self.healthy
        self.consecutive_failures = 0
        self.healthy = True
        self.ever_succeeded = True
        return Transition.NONE if was else Transition.BECAME_HEALTHY

    def failure(self) -> Transition:
        """Count a failure; BECAME_UNHEALTHY once, when the count reaches the threshold (also
        for a joining instance that never answered, so it is reported as unreachable)."""
        self.consecutive_failures += 1
        if self.consecutive_failures < self.threshold:
            return Transition.NONE
        self.healthy = False
        self.needs_model_info = True
        return Transition.BECAME_UNHEALTHY if self.consecutive_failures == self.threshold else Transition.NONE

    def model_info_read(self) -> None:
        self.needs_model_info = False
