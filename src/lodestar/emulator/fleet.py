"""A fleet of emulated instances in one process, on consecutive ports, sharing one clock.

``EmulatedFleet.build`` makes the object graph (nothing runs yet); ``bind`` takes every port
or none (a busy port raises :class:`PortInUseError` naming it); ``start`` / ``stop`` run inside
the event loop. Instance ``i`` of the cluster (in cluster order) gets ``first_port + i``
(``first_port`` 0: any free ports).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from lodestar.cluster.spec import InstanceSpec
from lodestar.emulator.clock import VirtualClock
from lodestar.emulator.control import build_control_app
from lodestar.emulator.instance import EmulatedInstance
from lodestar.emulator.server import InstanceServer, quiet_intentional_drops
from lodestar.emulator.settings import EmulatorSettings
from lodestar.localinfra.ports import HIGHEST as MAX_PORT


class EmulatedFleet:
    def __init__(self, instances: Sequence[EmulatedInstance], control: InstanceServer | None) -> None:
        self.instances = {i.instance_id: i for i in instances}
        self.control = control

    @classmethod
    def build(
        cls,
        specs: Sequence[InstanceSpec],
        first_port: int,
        settings: EmulatorSettings,
        log: Any,
        admin_port: int | None = None,
    ) -> EmulatedFleet:
        """Call inside the running event loop (the clock starts now)."""
        if not specs:
            raise ValueError("a fleet needs at least one instance")
        if first_port and first_port + len(specs) - 1 > MAX_PORT:
            raise ValueError(f"ports {first_port}..{first_port + len(specs) - 1} go past {MAX_PORT}")
        loop = asyncio.get_running_loop()
        clock = VirtualClock(start_wall_s=loop.time(), time_scale=settings.time_scale, wall_time=loop.time)
        instances = [
            EmulatedInstance(spec, first_port + k if first_port else 0, settings, clock, log)
            for k, spec in enumerate(specs)
        ]
        control = None
        if admin_port is not None:
            app = build_control_app({i.instance_id: i for i in instances})
            control = InstanceServer(app, settings.host, admin_port, "control")
        return cls(instances, control)

    def _servers(self) -> list[InstanceServer]:
        servers = [i.server for i in self.instances.values()]
        return servers if self.control is None else [*servers, self.control]

    def bind(self) -> None:
        bound: list[InstanceServer] = []
        try:
            for server in self._servers():
                server.bind()
                bound.append(server)
        except OSError:
            for server in bound:
                server.go_away()
            raise

    def start(self) -> None:
        quiet_intentional_drops()
        self.bind()
        for instance in self.instances.values():
            instance.start()
        if self.control is not None:
            self.control.start()

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
        await asyncio.gather(*(i.stop() for i in self.instances.values()))
