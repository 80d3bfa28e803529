"""The ports a local stack listens on (``lodestar up``'s defaults, or a free block for tests)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from lodestar.localinfra.ports import free_port_block


@dataclass(frozen=True)
class StackPorts:
    broker: int = 9092
    gateway: int = 8080
    router: int = 8091
    router_admin: int = 8095
    collector: int = 8092
    trainer: int = 8094
    history: int = 8090
    emulator_base: int = 8001

    def roles(self, n_instances: int, history: bool = True) -> list[tuple[str, int]]:
        """Every port a stack listens on, with its role (``emulator`` for each of the
        ``n_instances`` consecutive ports from ``emulator_base``); ``history`` off leaves the
        history service's out."""
        roles = [(f.name, getattr(self, f.name)) for f in fields(self) if f.name != "emulator_base"]
        if not history:
            roles = [(role, port) for role, port in roles if role != "history"]
        return roles + [("emulator", self.emulator_base + k) for k in range(n_instances)]

    def clashes(self, n_instances: int, history: bool = True) -> list[tuple[str, str, int]]:
        """Pairs of roles given the same port, as ``(role, role, port)``; empty when every
        port is distinct."""
        owners: dict[int, str] = {}
        found: list[tuple[str, str, int]] = []
        for role, port in self.roles(n_instances, history):
            if port in owners:
                found.append((owners[port], role, port))
            else:
                owners[port] = role
        return found

    @classmethod
    def free(cls, n_instances: int, host: str = "127.0.0.1") -> StackPorts:
        """Ports that were free a moment ago: one consecutive block, so no two collide."""
        base = free_port_block(7 + n_instances, host)
        services = range(base, base + 7)
        broker, gateway, router, router_admin, collector, trainer, history = services
        return cls(broker, gateway, router, router_admin, collector, trainer, history, emulator_base=base + 7)
