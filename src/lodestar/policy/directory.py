"""The fleet as a service sees it: a :class:`~lodestar.policy.fleet.FleetState` plus each
instance's URL, and the freshness rules applied to scraped state. The router and the gateway
(for its local fallback) keep their fleets with this one class, so both judge an instance alike.

States come from the instance-state topic (:meth:`InstanceDirectory.apply`) or from settings
(static instances). Freshness, as llm-d treats metrics:

- an instance whose last state is older than ``staleness_s`` is offered to policies as
  unhealthy (its state is no evidence any more); one silent for ``remove_after_s`` is
  forgotten, with its in-flight accounting (:meth:`InstanceDirectory.sweep`);
- a static instance that was never scraped is always offered as healthy (nothing scrapes
  simple setups); once scraped it follows the same rules but is never forgotten;
- a state's age is taken from its own timestamp (``ts``, the collector's clock), so consumer
  lag does not make old states look fresh; hosts need synchronised clocks (NTP), and states
  that arrive already stale are counted so skew or lag is visible. A state older than the one
  held is ignored (and counted).

When the whole feed goes silent (``hold_when_silent``; no instance has sent a state for
``staleness_s``: the broker or the collector is down, not every instance at once), silence is
no evidence against any one instance: the last states stand (nothing turns stale, nothing is
forgotten) until states flow again, and outlier ejection alone takes failing instances out
(readmitting them when their backoff ends, as nothing can confirm their health).

Outlier ejection (:mod:`lodestar.policy.ejection`) lives here too, so the gateway and the
router apply it alike: whoever served or failed a request reports it (:meth:`InstanceDirectory.report`);
an ejected instance is offered to policies as unhealthy until its backoff has ended and a
healthy scrape taken since the ejection has arrived (:meth:`InstanceDirectory.candidates` readmits).

Times: ``now_s`` is host monotonic seconds, ``wall_now_s`` the wall clock (epoch seconds).
Event-loop only, not thread-safe.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lodestar.policy.contracts import InstanceView
from lodestar.policy.ejection import EjectionPolicy, Ejections, classify
from lodestar.policy.fleet import FleetState


class ScrapedState(Protocol):
    """What :meth:`InstanceDirectory.apply` reads of one scrape (the ``InstanceState`` event)."""

    @property
    def ts(self) -> datetime: ...
    @property
    def instance_id(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def hardware(self) -> str | None: ...
    @property
    def max_model_len(self) -> int | None: ...
    @property
    def num_running(self) -> int: ...
    @property
    def num_waiting(self) -> int: ...
    @property
    def kv_usage_frac(self) -> float: ...
    @property
    def prefix_hit_rate(self) -> float | None: ...
    @property
    def healthy(self) -> bool: ...
    @property
    def num_gpu_blocks(self) -> int | None: ...


@dataclass(slots=True)
class InstanceEntry:
    """What the directory knows beyond the FleetState."""

    instance_id: str
    url: str
    model: str
    max_model_len: int | None = None
    static: bool = False
    hardware: str | None = None
    scrape_healthy: bool = True
    state_at_s: float | None = None  # host time the last state was taken; None: never scraped


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """One instance for an admin view (``age_s`` is None if never scraped)."""

    instance_id: str
    url: str
    model: str
    static: bool
    hardware: str | None
    healthy: bool
    stale: bool
    age_s: float | None
    view: InstanceView | None
    ejected: bool = False


class InstanceDirectory:
    """Instances by id with their URL; candidates with the freshness rules applied.
    Requires ``0 < staleness_s < remove_after_s`` (ValueError otherwise). ``ejection``: the
    outlier-ejection backoffs (default :class:`EjectionPolicy`); ``hold_when_silent``: keep the
    last states while the whole feed is silent (see the module docstring)."""

    def __init__(
        self,
        fleet: FleetState,
        staleness_s: float = 2.0,
        remove_after_s: float = 30.0,
        ejection: EjectionPolicy | None = None,
        hold_when_silent: bool = False,
    ) -> None:
        if not 0 < staleness_s < remove_after_s:
            raise ValueError(f"need 0 < staleness_s ({staleness_s}) < remove_after_s ({remove_after_s})")
        self.fleet = fleet
        self.ejections = Ejections(ejection)
        self.hold_when_silent = hold_when_silent
        self._newest_state_at_s: float | None = None
        self.staleness_s = staleness_s
        self.remove_after_s = remove_after_s
        self.states_applied = 0
        self.states_out_of_order = 0
        self.states_arrived_stale = 0
        self._entries: dict[str, InstanceEntry] = {}

    # --- changes ---------------------------------------------------------------------------

    def add_static(self, instance_id: str, url: str, model: str, max_model_len: int | None = None) -> None:
        self.fleet.upsert_instance(instance_id, model, max_model_len)
        self._entries[instance_id] = InstanceEntry(instance_id, url, model, max_model_len, static=True)

    def apply(self, state: ScrapedState, now_s: float, wall_now_s: float) -> bool:
        """Record one scraped state received at host time ``now_s`` (wall clock ``wall_now_s``).
        Returns False for a state older than the one already held (ignored)."""
        age = max(0.0, wall_now_s - state.ts.timestamp())
        taken_at = now_s - age
        entry = self._entries.get(state.instance_id)
        if entry is not None and entry.state_at_s is not None and taken_at < entry.state_at_s:
            self.states_out_of_order += 1
            return False
        if age > self.staleness_s:
            self.states_arrived_stale += 1
        self.fleet.upsert_instance(state.instance_id, state.model, state.max_model_len)
        self.fleet.update_scrape(
            state.instance_id,
            num_running=state.num_running,
            num_waiting=state.num_waiting,
            kv_usage_frac=state.kv_usage_frac,
            prefix_hit_rate=state.prefix_hit_rate,
            healthy=state.healthy,
            at_s=taken_at,
            kv_capacity_blocks=state.num_gpu_blocks,
        )
        if entry is None:
            entry = self._entries[state.instance_id] = InstanceEntry(state.instance_id, state.url, state.model)
        entry.url, entry.model, entry.max_model_len = state.url, state.model, state.max_model_len
        entry.hardware = state.hardware
        entry.scrape_healthy = state.healthy
        entry.state_at_s = taken_at
        if self._newest_state_at_s is None or taken_at > self._newest_state_at_s:
            self._newest_state_at_s = taken_at
        self.states_applied += 1
        return True

    def sweep(self, now_s: float) -> list[str]:
        """Forget every non-static instance silent for ``remove_after_s``; returns their ids
        (none while the whole feed is silent and ``hold_when_silent``)."""
        if self.feed_silent(now_s):
            return []
        gone = [
            e.instance_id
            for e in self._entries.values()
            if not e.static and (e.state_at_s is None or now_s - e.state_at_s > self.remove_after_s)
        ]
        for iid in gone:
            del self._entries[iid]
            self.fleet.remove_instance(iid)
            self.ejections.forget(iid)
        return gone

    def report(
        self, instance_id: str, error_class: str | None, now_s: float, silent_since_s: float | None = None
    ) -> float | None:
        """The end of one attempt on ``instance_id``: ``error_class`` None for a success, else
        the gateway's error class (``RequestOutcome.error_class``). Returns the ejection
        backoff in seconds if this failure ejects the instance now, else None. Unknown
        instances and errors that do not blame the instance change nothing; nor does a failure
        while the model's instances have as many ejected as the policy allows (counted), nor
        a deadline missed by an attempt that received nothing since ``silent_since_s`` (when
        it was sent) while the instance made progress (counted; :mod:`~lodestar.policy.ejection`),
        nor a non-streamed request's whole-response deadline missed after tokens came
        (``silent_since_s`` None): the idle deadline guards against silence, this one against
        length."""
        if instance_id not in self._entries:
            return None
        if error_class is None:
            self.ejections.success(instance_id, now_s)
            return None
        kind = classify(error_class, tokens_came=silent_since_s is None)
        if kind is None:
            return None
        return self.ejections.failure(
            instance_id, kind, now_s, may_eject=self._room_to_eject(instance_id, now_s), silent_since_s=silent_since_s
        )

    def progress(self, instance_id: str, now_s: float) -> None:
        """Some request on ``instance_id`` received its first token at ``now_s``."""
        if instance_id in self._entries:
            self.ejections.progress(instance_id, now_s)

    def _room_to_eject(self, instance_id: str, now_s: float) -> bool:
        """Whether the instances serving ``instance_id``'s model have fewer ejected than they may."""
        model = self._entries[instance_id].model
        pool = [iid for iid, e in self._entries.items() if e.model == model]
        ejected = sum(1 for iid in pool if self.is_ejected(iid, now_s))
        return ejected < self.ejections.policy.max_ejected(len(pool))

    def feed_silent(self, now_s: float) -> bool:
        """True if ``hold_when_silent`` and no instance has sent a state for ``staleness_s``
        (some instance did once)."""
        newest = self._newest_state_at_s
        return self.hold_when_silent and newest is not None and now_s - newest > self.staleness_s

    def ejected_ids(self, now_s: float) -> list[str]:
        """The instances ejected now (readmitting those whose time has come)."""
        if not self.ejections.ejected_count():
            return []
        return [iid for iid in self._entries if self.is_ejected(iid, now_s)]

    def is_ejected(self, instance_id: str, now_s: float) -> bool:
        """Whether ``instance_id`` is ejected now (readmitting it if its time has come)."""
        entry = self._entries.get(instance_id)
        if entry is None:
            return False
        scraped_at = None if self.feed_silent(now_s) else entry.state_at_s  # silent: the backoff alone decides
        return self.ejections.ejected(instance_id, now_s, scraped_at, entry.scrape_healthy)

    # --- reads -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._entries

    def entries(self) -> Iterator[InstanceEntry]:
        """Every known instance (do not change them)."""
        return iter(self._entries.values())

    def url(self, instance_id: str) -> str | None:
        entry = self._entries.get(instance_id)
        return entry.url if entry is not None else None

    def candidates(self, model: str, now_s: float, exclude: Collection[str] = ()) -> list[InstanceView]:
        """The instances serving ``model`` minus ``exclude``, stale ones marked unhealthy."""
        out: list[InstanceView] = []
        limit = math.inf if self.feed_silent(now_s) else self.staleness_s
        for view in self.fleet.candidates(model, now_s):
            if exclude and view.instance_id in exclude:
                continue
            # never scraped (age inf): only a static instance counts as fresh
            stale = view.state_age_s > limit and (
                math.isfinite(view.state_age_s) or not self._is_static(view.instance_id)
            )
            if view.healthy and (stale or self.is_ejected(view.instance_id, now_s)):
                view = dataclasses.replace(view, healthy=False)
            out.append(view)
        return out

    def healthy_count(self, now_s: float) -> int:
        """Instances a policy would be offered as healthy now."""
        return sum(1 for e in self._entries.values() if self._fresh_and_healthy(e, now_s))

    def status(self, now_s: float) -> list[InstanceStatus]:
        """Every instance, sorted by id, with its effective health and freshness."""
        views: dict[str, InstanceView] = {}
        for model in {e.model for e in self._entries.values()}:
            views.update((v.instance_id, v) for v in self.fleet.candidates(model, now_s))
        out = []
        for iid in sorted(self._entries):
            e = self._entries[iid]
            age = None if e.state_at_s is None else max(0.0, now_s - e.state_at_s)
            out.append(
                InstanceStatus(
                    instance_id=iid,
                    url=e.url,
                    model=e.model,
                    static=e.static,
                    hardware=e.hardware,
                    healthy=self._fresh_and_healthy(e, now_s),
                    stale=age is not None and age > self.staleness_s,
                    age_s=age,
                    view=views.get(iid),
                    ejected=self.is_ejected(iid, now_s),
                )
            )
        return out

    def _is_static(self, instance_id: str) -> bool:
        entry = self._entries.get(instance_id)
        return entry is not None and entry.static

    def _fresh_and_healthy(self, e: InstanceEntry, now_s: float) -> bool:
        if e.state_at_s is None:
            fresh = e.static
        else:
            fresh = e.scrape_healthy and (now_s - e.state_at_s <= self.staleness_s or self.feed_silent(now_s))
        return fresh and not self.is_ejected(e.instance_id, now_s)


class _NamedInstance(Protocol):
    @property
    def instance_id(self) -> str: ...


class DirectorySettings(Protocol):
    """The instance-directory part of the gateway's and the router's settings."""

    @property
    def staleness_s(self) -> float: ...
    @property
    def remove_after_s(self) -> float: ...
    @property
    def ejection_base_s(self) -> float: ...
    @property
    def ejection_max_s(self) -> float: ...
    @property
    def instances(self) -> Sequence[_NamedInstance]: ...


def check_directory_settings(settings: DirectorySettings) -> None:
    """The consistency rules of an instance directory's settings, shared by the gateway and the
    router: ValueError naming the setting otherwise."""
    staleness_s, remove_after_s = settings.staleness_s, settings.remove_after_s
    ejection_base_s, ejection_max_s = settings.ejection_base_s, settings.ejection_max_s
    instance_ids = [i.instance_id for i in settings.instances]
    if remove_after_s <= staleness_s:
        raise ValueError(f"remove_after_s ({remove_after_s}) must be greater than staleness_s ({staleness_s})")
    if ejection_max_s < ejection_base_s:
        raise ValueError(f"ejection_max_s ({ejection_max_s}) must be >= ejection_base_s ({ejection_base_s})")
    dupes = sorted({i for i in instance_ids if instance_ids.count(i) > 1})
    if dupes:
        raise ValueError(f"instances: duplicate instance_id {', '.join(dupes)}")
