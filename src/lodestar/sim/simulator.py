"""The discrete-event simulator: a cluster of engines in virtual time behind one policy.

Per request: at its arrival the policy sees the request and every candidate as the live
router would (scraped state as of the last scrape, plus in-flight accounting), decides, and
the request joins the chosen engine. Engines report first tokens and completions at the
exact virtual times the engine model gives; scrapes refresh the policy's view every
``scrape_interval_s`` (the staleness a metrics scraper has). Observers (e.g. an in-simulation
trainer) see every decision and outcome and may schedule their own timed actions.

Deterministic: the same cluster, workload, policy seed and config give the same records.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lodestar.cluster.spec import ClusterSpec
from lodestar.engine.engine import Engine, RequestRejectedError
from lodestar.engine.request import EngineRequest, StepEvents
from lodestar.policy.contracts import Decision, NoCandidateError, Outcome, Policy, RequestView
from lodestar.policy.fleet import FleetState
from lodestar.sim.results import RequestRecord, Summary, summarize
from lodestar.workload.faults import InstanceFault
from lodestar.workload.request import RequestSpec

# Event priorities at equal times: engine progress, then faults, timers, scrapes, arrivals.
_ENGINE, _FAULT, _TIMER, _SCRAPE, _ARRIVAL = range(5)


class SimObserver(Protocol):
    """Sees every decision and outcome of a run (an in-simulation trainer, a recorder...)."""

    def on_decision(self, request: RequestView, decision: Decision, now_s: float) -> None: ...

    def on_outcome(self, outcome: Outcome, now_s: float) -> None: ...


@dataclass(frozen=True)
class SimConfig:
    """``scrape_interval_s``: how stale the scraped state a policy sees may be."""

    scrape_interval_s: float = 0.1
    max_run_steps: int = 4096


@dataclass
class SimResult:
    policy: str
    cluster: str
    records: list[RequestRecord]
    summary: Summary
    wall_s: float
    routed: dict[str, int] = field(default_factory=dict)


@dataclass
class _InFlight:
    spec: RequestSpec
    instance_id: str
    decision: Decision


class Simulator:
    """Runs one workload through one policy on one cluster. Use once per run."""

    def __init__(
        self,
        cluster: ClusterSpec,
        policy: Policy,
        config: SimConfig | None = None,
        observers: Sequence[SimObserver] = (),
        faults: Sequence[InstanceFault] = (),
    ) -> None:
        self.cluster = cluster
        self.policy = policy
        self.config = config or SimConfig()
        self.observers = list(observers)
        self.faults = sorted(faults, key=lambda f: f.at_s)
        self.fleet = FleetState()
        self.engines: dict[str, Engine] = {}
        for inst in cluster.instances():
            self.engines[inst.instance_id] = Engine(inst.profile, max_run_steps=self.config.max_run_steps)
            self.fleet.upsert_instance(inst.instance_id, inst.model_name, max_model_len=inst.profile.context_limit)
        self._heap: list[tuple[float, int, int, object]] = []
        self._seq = itertools.count()
        self._engine_due: dict[str, float | None] = dict.fromkeys(self.engines)
        self._inflight: dict[str, _InFlight] = {}
        self._records: list[RequestRecord] = []
        self._last_prefix: dict[str, tuple[int, int]] = {iid: (0, 0) for iid in self.engines}
        self._routed: dict[str, int] = dict.fromkeys(self.engines, 0)
        self.now_s = 0.0
        self._remaining_arrivals = 0

    # --- public ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while requests are still to arrive or in flight."""
        return self._remaining_arrivals > 0 or bool(self._inflight)

    def call_at(self, at_s: float, action: Callable[[float], None]) -> None:
        """Run ``action(now_s)`` at virtual time ``at_s`` (for observers' timed actions)."""
        self._push(max(at_s, self.now_s), _TIMER, action)

    def run(self, requests: Sequence[RequestSpec]) -> SimResult:
        started = time.perf_counter()
        arrivals = iter(sorted(requests, key=lambda r: r.arrival_s))
        self._push_next_arrival(arrivals)
        for fault in self.faults:
            self._push(fault.at_s, _FAULT, fault)
        self._push(0.0, _SCRAPE, None)
        self._remaining_arrivals = len(requests)
        while self._heap:
            t, kind, _, payload = heapq.heappop(self._heap)
            self.now_s = t
            if kind == _ENGINE:
                iid = str(payload)
                if self._engine_due[iid] != t:
                    continue  # superseded
                self._engine_due[iid] = None
                self._progress(iid, t)
            elif kind == _ARRIVAL:
                assert isinstance(payload, RequestSpec)
                self._remaining_arrivals -= 1
                self._arrive(payload, t)
                self._push_next_arrival(arrivals)
            elif kind == _SCRAPE:
                self._scrape(t)
                if self.busy:
                    self._push(t + self.config.scrape_interval_s, _SCRAPE, None)
            elif kind == _FAULT:
                assert isinstance(payload, InstanceFault)
                self._apply_fault(payload, t)
            else:
                action: Callable[[float], None] = payload  # type: ignore[assignment]
                action(t)
        records = sorted(self._records, key=lambda r: r.arrival_s)
        return SimResult(
            policy=self.policy.name,
            cluster=self.cluster.name,
            records=records,
            summary=summarize(self.policy.name, records),
            wall_s=time.perf_counter() - started,
            routed=dict(self._routed),
        )

    # --- events ----------------------------------------------------------------------------

    def _push(self, t: float, kind: int, payload: object) -> None:
        heapq.heappush(self._heap, (t, kind, next(self._seq), payload))

    def _push_next_arrival(self, arrivals: Iterator[RequestSpec]) -> None:
        nxt = next(arrivals, None)
        if nxt is not None:
            self._push(nxt.arrival_s, _ARRIVAL, nxt)

    def _arrive(self, spec: RequestSpec, now: float) -> None:
        hashes = spec.prompt.block_hashes()
        view = RequestView(
            request_id=spec.request_id,
            model=spec.model,
            prompt_tokens=spec.prompt.n_tokens,
            block_hashes=tuple(hashes),
            expected_output_tokens=spec.output_tokens,
            tenant=spec.tenant,
            session_id=spec.session_id,
        )
        try:
            decision = self.policy.decide(view, self.fleet.candidates(spec.model, now), now)
        except NoCandidateError:
            self._records.append(_failed(spec, None, "no_candidate"))
            return
        for obs in self.observers:
            obs.on_decision(view, decision, now)
        iid = decision.instance_id
        engine = self.engines[iid]
        self._deliver(iid, engine.advance(now))
        self.fleet.on_dispatch(spec.request_id, iid, spec.prompt.n_tokens, now)
        self._routed[iid] += 1
        try:
            engine.add(EngineRequest(spec.request_id, spec.prompt.n_tokens, hashes, spec.output_tokens, now), now)
        except RequestRejectedError:
            self.fleet.on_finish(spec.request_id, now)
            self._records.append(_failed(spec, iid, "rejected", decision))
            self._feedback(Outcome(spec.request_id, iid, spec.prompt.n_tokens, 0, None, None, 0.0, "rejected"), now)
            return
        self._inflight[spec.request_id] = _InFlight(spec, iid, decision)
        self._reschedule(iid)

    def _progress(self, iid: str, now: float) -> None:
        self._deliver(iid, self.engines[iid].advance(now))
        self._reschedule(iid)

    def _reschedule(self, iid: str) -> None:
        due = self.engines[iid].plan_end_s()
        if due is not None and due != self._engine_due[iid]:
            self._engine_due[iid] = due
            self._push(due, _ENGINE, iid)

    def _deliver(self, iid: str, events: StepEvents) -> None:
        for rid, at in events.first_tokens:
            self.fleet.on_first_token(rid, at)
            self.policy.on_first_token(rid, iid, at)
        for done in events.finished:
            live = self._inflight.pop(done.request_id)
            self.fleet.on_finish(done.request_id, done.finish_s)
            self._records.append(
                RequestRecord(
                    request_id=done.request_id,
                    instance_id=iid,
                    arrival_s=done.arrival_s,
                    prompt_tokens=done.prompt_tokens,
                    output_tokens=done.output_tokens,
                    ttft_s=done.ttft_s,
                    tpot_s=done.tpot_s,
                    e2e_s=done.e2e_s,
                    finish_s=done.finish_s,
                    prefix_hit_tokens=done.prefix_hit_tokens,
                    preemptions=done.preemptions,
                    queue_s=done.queue_s,
                    explore=live.decision.explore,
                    fallback=live.decision.fallback,
                )
            )
            outcome = Outcome(
                decision_id=done.request_id,
                instance_id=iid,
                prompt_tokens=done.prompt_tokens,
                completion_tokens=done.output_tokens,
                ttft_s=done.ttft_s,
                tpot_s=done.tpot_s,
                e2e_s=done.e2e_s,
            )
            self._feedback(outcome, done.finish_s)

    def _feedback(self, outcome: Outcome, at: float) -> None:
        self.policy.on_outcome(outcome, at)
        for obs in self.observers:
            obs.on_outcome(outcome, at)

    def _scrape(self, now: float) -> None:
        for iid, engine in self.engines.items():
            self._deliver(iid, engine.advance(now))
            snap = engine.snapshot()
            q0, h0 = self._last_prefix[iid]
            dq, dh = snap.prefix_query_tokens - q0, snap.prefix_hit_tokens - h0
            self._last_prefix[iid] = (snap.prefix_query_tokens, snap.prefix_hit_tokens)
            self.fleet.update_scrape(
                iid,
                num_running=snap.num_running,
                num_waiting=snap.num_waiting,
                kv_usage_frac=snap.kv_usage_frac,
                prefix_hit_rate=dh / dq if dq else None,
                healthy=True,
                at_s=now,
                kv_capacity_blocks=snap.num_gpu_blocks,
            )
            self._reschedule(iid)

    def _apply_fault(self, fault: InstanceFault, now: float) -> None:
        engine = self.engines.get(fault.instance_id)
        if engine is None:
            raise KeyError(f"fault names unknown instance {fault.instance_id!r}")
        self._deliver(fault.instance_id, engine.advance(now))
        if fault.kind == "slowdown":
            engine.set_speed_factor(fault.factor, now)
        elif fault.kind == "restore":
            engine.set_speed_factor(1.0, now)
        else:
            raise ValueError(f"the simulator cannot apply fault kind {fault.kind!r}")
        self._reschedule(fault.instance_id)


def _failed(spec: RequestSpec, iid: str | None, error: str, decision: Decision | None = None) -> RequestRecord:
    return RequestRecord(
        request_id=spec.request_id,
        instance_id=iid,
        arrival_s=spec.arrival_s,
        prompt_tokens=spec.prompt.n_tokens,
        output_tokens=0,
        ttft_s=None,
        tpot_s=None,
        e2e_s=None,
        finish_s=None,
        explore=decision.explore if decision else False,
        fallback=decision.fallback if decision else False,
        error=error,
    )
