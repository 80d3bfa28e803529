"""Instance faults a workload schedules but cannot apply itself.

A workload only produces requests; an instance slowing down is something the engine does. So
a workload carries its faults as data, and the simulator and the emulator apply them through
their fault hooks at ``at_s`` on the workload clock (the same clock as ``RequestSpec.arrival_s``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["slowdown", "restore"]


@dataclass(frozen=True, slots=True)
class InstanceFault:
    """At ``at_s`` seconds, change the speed of instance ``instance_id``.

    - ``slowdown``: from ``at_s`` on, every engine step (prefill and decode iteration) on the
      instance takes ``factor`` times its nominal time; ``factor`` > 0 (2.0 = half speed,
      values below 1 model a speed-up). A later slowdown of the same instance replaces the
      factor, it does not compound.
    - ``restore``: the instance runs at nominal speed again; ``factor`` must be 1.0.

    Faults of one workload are ordered by ``at_s``; two faults of one instance at the same
    ``at_s`` apply in list order.
    """

    at_s: float
    instance_id: str
    kind: FaultKind
    factor: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.at_s) and self.at_s >= 0):
            raise ValueError(f"fault at_s must be finite and >= 0, got {self.at_s}")
        if not self.instance_id:
            raise ValueError("fault instance_id must not be empty")
        if self.kind == "slowdown" and not (math.isfinite(self.factor) and self.factor > 0):
            raise ValueError(f"slowdown factor must be finite and > 0, got {self.factor}")
        if self.kind == "restore" and self.factor != 1.0:
            raise ValueError(f"restore takes no factor (must be 1.0), got {self.factor}")
