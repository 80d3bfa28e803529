"""The one workload type: a request stream, the instance faults scheduled with it, metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lodestar.workload.faults import InstanceFault
from lodestar.workload.request import RequestSpec

MetadataValue = str | int | float | bool | None


@dataclass(frozen=True)
class Workload:
    """What the simulator, the emulator's load generator and replay consume.

    ``requests`` are sorted by ``arrival_s``; ``faults`` by ``at_s``, on the same clock.
    ``metadata`` says where the stream came from (source, seed, rows the token policy skipped
    or clamped, ...); it is informational and never changes behaviour.
    """

    name: str
    requests: tuple[RequestSpec, ...]
    faults: tuple[InstanceFault, ...] = ()
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)
