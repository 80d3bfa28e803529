"""The gateway's own view of the fleet, for the local fallback and ``/v1/models``: the shared
:class:`~lodestar.policy.directory.InstanceDirectory` (instances from the instance-state topic
and from settings, URLs, the router's freshness rules) plus what only the gateway asks of it —
which models the fleet serves and their context limits.

Every request the gateway forwards is accounted here (dispatch, first token, finish) whoever
chose its instance, so the local policy sees the gateway's real in-flight load when it takes
over; requests to instances the gateway does not know are ignored. Event-loop only, not
thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from lodestar.policy.directory import InstanceDirectory, InstanceEntry
from lodestar.policy.ejection import EjectionPolicy
from lodestar.policy.fleet import FleetState


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One model of the fleet: the largest context any of its instances takes (if known)."""

    model: str
    instances: int
    max_model_len: int | None


class LocalFleet(InstanceDirectory):
    """An :class:`InstanceDirectory` over its own :class:`FleetState`. ValueError unless
    ``0 < staleness_s < remove_after_s``."""

    def __init__(
        self,
        staleness_s: float = 2.0,
        remove_after_s: float = 30.0,
        ejection: EjectionPolicy | None = None,
        hold_when_silent: bool = False,
    ) -> None:
        super().__init__(FleetState(), staleness_s, remove_after_s, ejection, hold_when_silent)

    # --- models ----------------------------------------------------------------------------

    def models(self) -> list[ServedModel]:
        """Every model some known instance serves, sorted by name."""
        by_model: dict[str, list[InstanceEntry]] = {}
        for e in self.entries():
            by_model.setdefault(e.model, []).append(e)
        return [ServedModel(m, len(by_model[m]), self.context_limit(m)) for m in sorted(by_model)]

    def serves(self, model: str) -> bool:
        return any(e.model == model for e in self.entries())

    def context_limit(self, model: str) -> int | None:
        """The largest ``max_model_len`` among ``model``'s instances; None if any is unknown."""
        limit = 0
        for e in self.entries():
            if e.model == model:
                if e.max_model_len is None:
                    return None
                limit = max(limit, e.max_model_len)
        return limit or None

    # --- accounting ------------------------------------------------------------------------

    def on_dispatch(self, request_id: str, instance_id: str, prompt_tokens: int, now_s: float) -> None:
        if instance_id in self:
            self.fleet.on_dispatch(request_id, instance_id, prompt_tokens, now_s)

    def on_first_token(self, request_id: str, now_s: float) -> None:
        self.fleet.on_first_token(request_id, now_s)

    def on_finish(self, request_id: str, now_s: float) -> None:
        self.fleet.on_finish(request_id, now_s)
