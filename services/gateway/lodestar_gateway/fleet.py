"""The gateway's own view of the fleet, for the local fallback and ``/v1/models``: a
:class:`~lodestar.policy.fleet.FleetState` plus each instance's URL, kept from the
instance-state topic (and static instances from settings) with the router's freshness rules:

- an instance whose last state is older than ``staleness_s`` is offered to the local policy as
  unhealthy; one silent for ``remove_after_s`` is forgotten (:meth:`LocalFleet.sweep`);
- a static instance never scraped counts as healthy, and is never forgotten;
- a state's age comes from its own timestamp (the collector's clock), so consumer lag does
  not make old states look fresh.

Every request the gateway forwards is accounted here (dispatch, first token, finish) whoever
chose its instance, so the local policy sees the gateway's real in-flight load when it takes
over. Event-loop only, not thread-safe.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection
from dataclasses import dataclass

from lodestar.policy.contracts import InstanceView
from lodestar.policy.fleet import FleetState
from lodestar_schemas.events import InstanceState


@dataclass(slots=True)
class _Entry:
    url: str
    model: str
    max_model_len: int | None
    static: bool = False
    state_at_s: float | None = None  # host time the last state was taken; None: never scraped


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One model of the fleet: the largest context any of its instances takes (if known)."""

    model: str
    instances: int
    max_model_len: int | None


class LocalFleet:
    def __init__(self, staleness_s: float = 2.0, remove_after_s: float = 30.0) -> None:
        if not 0 < staleness_s < remove_after_s:
            raise ValueError(f"need 0 < staleness_s ({staleness_s}) < remove_after_s ({remove_after_s})")
        self.staleness_s = staleness_s
        self.remove_after_s = remove_after_s
        self.state = FleetState()
        self.states_applied = 0
        self._entries: dict[str, _Entry] = {}

    # --- changes ---------------------------------------------------------------------------

    def add_static(self, instance_id: str, url: str, model: str, max_model_len: int | None = None) -> None:
        self.state.upsert_instance(instance_id, model, max_model_len)
        self._entries[instance_id] = _Entry(url, model, max_model_len, static=True)

    def apply(self, state: InstanceState, now_s: float, wall_now_s: float) -> bool:
        """Record one scraped state received at host time ``now_s`` (wall clock ``wall_now_s``);
        False for a state older than the one held (ignored)."""
        taken_at = now_s - max(0.0, wall_now_s - state.ts.timestamp())
        entry = self._entries.get(state.instance_id)
        if entry is not None and entry.state_at_s is not None and taken_at < entry.state_at_s:
            return False
        self.state.upsert_instance(state.instance_id, state.model, state.max_model_len)
        self.state.update_scrape(
            state.instance_id,
            num_running=state.num_running,
            num_waiting=state.num_waiting,
            kv_usage_frac=state.kv_usage_frac,
            prefix_hit_rate=state.prefix_hit_rate,
            healthy=state.healthy,
            at_s=taken_at,
        )
        if entry is None:
            entry = self._entries[state.instance_id] = _Entry(state.url, state.model, state.max_model_len)
        entry.url, entry.model, entry.max_model_len = state.url, state.model, state.max_model_len
        entry.state_at_s = taken_at
        self.states_applied += 1
        return True

    def sweep(self, now_s: float) -> list[str]:
        """Forget every non-static instance silent for ``remove_after_s``; returns their ids."""
        gone = [
            iid
            for iid, e in self._entries.items()
            if not e.static and (e.state_at_s is None or now_s - e.state_at_s > self.remove_after_s)
        ]
        for iid in gone:
            del self._entries[iid]
            self.state.remove_instance(iid)
        return gone

    # --- reads -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._entries

    def url(self, instance_id: str) -> str | None:
        entry = self._entries.get(instance_id)
        return entry.url if entry is not None else None

    def models(self) -> list[ServedModel]:
        """Every model some known instance serves, sorted by name."""
        by_model: dict[str, list[_Entry]] = {}
        for e in self._entries.values():
            by_model.setdefault(e.model, []).append(e)
        return [ServedModel(m, len(by_model[m]), self.context_limit(m)) for m in sorted(by_model)]

    def serves(self, model: str) -> bool:
        return any(e.model == model for e in self._entries.values())

    def context_limit(self, model: str) -> int | None:
        """The largest ``max_model_len`` among ``model``'s instances; None if any is unknown."""
        limit = 0
        for e in self._entries.values():
            if e.model == model:
                if e.max_model_len is None:
                    return None
                limit = max(limit, e.max_model_len)
        return limit or None

    def candidates(self, model: str, now_s: float, exclude: Collection[str] = ()) -> list[InstanceView]:
        """The instances serving ``model`` minus ``exclude``, stale ones marked unhealthy."""
        out: list[InstanceView] = []
        for view in self.state.candidates(model, now_s):
            if view.instance_id in exclude:
                continue
            never_scraped = not math.isfinite(view.state_age_s)
            stale = view.state_age_s > self.staleness_s and not (never_scraped and self._is_static(view.instance_id))
            if stale and view.healthy:
                view = dataclasses.replace(view, healthy=False)
            out.append(view)
        return out

    def healthy_count(self, now_s: float) -> int:
        n = 0
        for model in {e.model for e in self._entries.values()}:
            n += sum(1 for v in self.candidates(model, now_s) if v.healthy)
        return n

    def _is_static(self, instance_id: str) -> bool:
        entry = self._entries.get(instance_id)
        return entry is not None and entry.static

    # --- accounting (ignores instances the gateway does not know) ---------------------------

    def on_dispatch(self, request_id: str, instance_id: str, prompt_tokens: int, now_s: float) -> None:
        if instance_id in self._entries:
            self.state.on_dispatch(request_id, instance_id, prompt_tokens, now_s)

    def on_first_token(self, request_id: str, now_s: float) -> None:
        self.state.on_first_token(request_id, now_s)

    def on_finish(self, request_id: str, now_s: float) -> None:
        self.state.on_finish(request_id, now_s)
