"""The routing core: one decision per request, feedback into the fleet accounting and the
policy that decided, policy and model swaps.

Everything here runs on the event loop, synchronously: ``policy.decide`` is called inline
(policies are not thread-safe, and a decision takes far less than a thread hop). Per request:
:meth:`Dispatcher.route` asks the current policy, records the dispatch in the FleetState and
returns the answer; the ``RouteDecision`` event is built and handed to the non-blocking
publisher after the answer (``defer``, the loop's ``call_soon`` in the service), so its
validation never delays the response. :meth:`Dispatcher.feedback` applies first-token and
final feedback to the FleetState, to the policy that made the decision (after an admin
swap, decisions of the old policy still report to it) and to the directory's outlier
ejection (a failure that blames the instance ejects it for a backoff). A request id routed again while in
flight is a retry: the earlier dispatch is released first (the policy sees it fail with
``error="retried"``). Dispatches without final feedback for ``inflight_timeout_s`` are released
by :meth:`expire` (``error="expired"``) so lost feedback cannot inflate in-flight counts forever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from pydantic import ValidationError

from lodestar.learn.blob import ModelState
from lodestar.learn.objective import Objective
from lodestar.learn.policy import LodestarPolicy
from lodestar.policy.contracts import Decision, InstanceView, NoCandidateError, Outcome, Policy, RequestView
from lodestar.policy.directory import InstanceDirectory
from lodestar_router.mapping import decision_event, outcome_of, request_view, route_response
from lodestar_router.metrics import RouterMetrics
from lodestar_router.model_updates import ModelStore
from lodestar_schemas.events import Event
from lodestar_schemas.router_api import Feedback, RouteRequest, RouteResponse

log = structlog.get_logger(__name__)


class NotLearnedError(RuntimeError):
    """The operation needs the learned policy, and another one is in force."""


@dataclass(slots=True)
class _Routed:
    instance_id: str
    policy: Policy
    prompt_tokens: int
    at_s: float
    first_token: bool = False


@dataclass(frozen=True)
class FeedbackResult:
    applied: int = 0
    unknown: int = 0
    mismatched: int = 0


class Dispatcher:
    """Owns the current policy reference and the in-flight decisions. Event-loop only."""

    def __init__(
        self,
        directory: InstanceDirectory,
        policy: Policy,
        models: ModelStore,
        metrics: RouterMetrics,
        publish: Callable[[Event], bool],
        defer: Callable[[Callable[[], None]], object] | None = None,
        inflight_timeout_s: float = 900.0,
    ) -> None:
        self.directory = directory
        self.models = models
        self.metrics = metrics
        self.inflight_timeout_s = inflight_timeout_s
        self.defer = defer
        self._publish = publish
        self._policy = policy
        self._routed: dict[str, _Routed] = {}
        if models.latest is not None:
            self.install_model(models.latest)

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def inflight(self) -> int:
        return len(self._routed)

    # --- requests --------------------------------------------------------------------------

    def route(self, request: RouteRequest, now_s: float) -> RouteResponse:
        """Decide for ``request``; NoCandidateError when no instance can take it."""
        view = request_view(request)
        previous = self._routed.pop(view.request_id, None)
        if previous is not None:
            self.metrics.retries.inc()
            self._release(view.request_id, previous, now_s, "retried")
        candidates = self.directory.candidates(view.model, now_s, request.exclude)
        if not candidates:
            self.metrics.unavailable.inc()
            excluding = f" (excluding {', '.join(request.exclude)})" if request.exclude else ""
            raise NoCandidateError(view.request_id, f"no instance serves model {view.model!r}{excluding}")
        policy = self._policy
        t0 = time.perf_counter()
        try:
            decision = policy.decide(view, candidates, now_s)
        except NoCandidateError:
            self.metrics.unavailable.inc()
            raise
        decide_s = time.perf_counter() - t0
        url = self.directory.url(decision.instance_id)
        if url is None:
            raise RuntimeError(f"policy {policy.name!r} chose {decision.instance_id!r}, which was not offered")
        self.directory.fleet.on_dispatch(view.request_id, decision.instance_id, view.prompt_tokens, now_s)
        self._routed[view.request_id] = _Routed(decision.instance_id, policy, view.prompt_tokens, now_s)
        ts = datetime.now(UTC)
        if self.defer is None:
            self._emit(view, decision, candidates, ts, decide_s)
        else:
            self.defer(lambda: self._emit(view, decision, candidates, ts, decide_s))
        return route_response(view, decision, url)

    def _emit(
        self, view: RequestView, decision: Decision, candidates: Sequence[InstanceView], ts: datetime, decide_s: float
    ) -> None:
        """The decision's metrics and event (after the answer, with ``defer``)."""
        self.metrics.observe_decision(
            decision.policy, decision.instance_id, decision.fallback, decision.explore, decide_s
        )
        try:
            event = decision_event(view, decision, candidates, ts)
        except ValidationError as exc:
            self.metrics.invalid_events.inc()
            log.error("decision_event_invalid", decision_id=view.request_id, policy=decision.policy, error=str(exc))
            return
        self._publish(event)

    # --- feedback --------------------------------------------------------------------------

    def feedback(self, events: Sequence[Feedback], now_s: float) -> FeedbackResult:
        """Apply feedback in order. Unknown decision ids (e.g. routed before a restart) and
        feedback naming another instance than the one routed to are ignored and counted."""
        applied = unknown = mismatched = 0
        fleet = self.directory.fleet
        counter = self.metrics.feedback
        for fb in events:
            routed = self._routed.get(fb.decision_id)
            if routed is None:
                unknown += 1
                counter.labels(fb.kind, "unknown").inc()
                continue
            if routed.instance_id != fb.instance_id:
                mismatched += 1
                counter.labels(fb.kind, "mismatched").inc()
                continue
            applied += 1
            counter.labels(fb.kind, "applied").inc()
            if fb.kind == "first_token":
                if not routed.first_token:
                    routed.first_token = True
                    fleet.on_first_token(fb.decision_id, now_s)
                    self.directory.progress(fb.instance_id, now_s)
                    routed.policy.on_first_token(fb.decision_id, fb.instance_id, now_s)
                continue
            del self._routed[fb.decision_id]
            fleet.on_finish(fb.decision_id, now_s)
            self._report(fb, now_s, None if routed.first_token else routed.at_s)
            routed.policy.on_outcome(outcome_of(fb, routed.prompt_tokens, now_s - routed.at_s), now_s)
        return FeedbackResult(applied, unknown, mismatched)

    def _report(self, fb: Feedback, now_s: float, silent_since_s: float | None) -> None:
        """Outlier ejection: the gateway's verdict on the attempt, into the shared directory.
        ``silent_since_s``: when the request was routed, if no first token was reported for it
        (a deadline it missed while the instance served others is queueing, not failure)."""
        error = None if fb.kind == "finished" else (fb.error or fb.kind)
        backoff = self.directory.report(fb.instance_id, error, now_s, silent_since_s)
        if backoff is not None:
            log.warning("instance_ejected", instance_id=fb.instance_id, error=error, backoff_s=backoff)

    def expire(self, now_s: float) -> int:
        """Release dispatches older than ``inflight_timeout_s``; returns how many."""
        cutoff = now_s - self.inflight_timeout_s
        old: list[str] = []
        for rid, routed in self._routed.items():  # insertion order is dispatch order
            if routed.at_s > cutoff:
                break
            old.append(rid)
        for rid in old:
            self._release(rid, self._routed.pop(rid), now_s, "expired")
        if old:
            self.metrics.expired.inc(len(old))
            log.warning("decisions_expired", count=len(old), timeout_s=self.inflight_timeout_s)
        return len(old)

    def _release(self, request_id: str, routed: _Routed, now_s: float, error: str) -> None:
        self.directory.fleet.on_finish(request_id, now_s)
        outcome = Outcome(
            request_id, routed.instance_id, routed.prompt_tokens, 0, None, None, now_s - routed.at_s, error
        )
        routed.policy.on_outcome(outcome, now_s)

    # --- policy and model ------------------------------------------------------------------

    def swap_policy(self, policy: Policy) -> None:
        """Put ``policy`` in force (one reference assignment); the FleetState is kept. A learned
        policy gets the newest good model first."""
        if isinstance(policy, LodestarPolicy) and self.models.latest is not None:
            policy.load_model(self.models.latest)
        old, self._policy = self._policy, policy
        self.metrics.policy_swaps.inc()
        log.info("policy_swapped", old=old.name, new=policy.name, model_version=self.model_version)

    def install_model(self, state: ModelState) -> bool:
        """Offer ``state`` to the current policy; True if it now uses it."""
        policy = self._policy
        if not isinstance(policy, LodestarPolicy):
            return False
        return policy.load_model(state)

    def set_objective(self, objective: Objective) -> None:
        policy = self._policy
        if not isinstance(policy, LodestarPolicy):
            raise NotLearnedError(f"policy {policy.name!r} is not learned; the objective applies to 'lodestar' only")
        policy.set_objective(objective)
        log.info("objective_set", **objective.model_dump())

    @property
    def model_version(self) -> int | None:
        policy = self._policy
        return policy.model_version if isinstance(policy, LodestarPolicy) else None
