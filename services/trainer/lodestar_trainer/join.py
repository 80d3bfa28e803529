"""Pairs each route decision with its request outcome, whichever comes first, within a time
window; turns a pair into a training sample. Pure; no I/O. Not thread-safe.

The key is (decision id, instance): a request the gateway retried elsewhere has one decision
per attempt under the same id, and its outcome names the instance that served it, so it pairs
with the decision that sent it there. A pair is skipped (and counted) when the decision was
made on another feature schema or the request failed before its first token; a decision whose
attempt never produced an outcome expires. Duplicates (at-least-once delivery) of an already
joined key are ignored.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lodestar.learn.features import FEATURE_SCHEMA_VERSION, targets
from lodestar.learn.samples import feature_vector
from lodestar_schemas.events import RequestOutcome, RouteDecision


@dataclass(frozen=True, slots=True)
class Sample:
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    t_s: float


@dataclass
class JoinStats:
    joined: int = 0
    expired: int = 0
    duplicates: int = 0
    other_schema: int = 0
    failed: int = 0


class DecisionOutcomeJoin:
    def __init__(self, window_s: float, max_pending: int = 200_000, remember_joined: int = 100_000) -> None:
        self.window_s = window_s
        self.max_pending = max_pending
        self.stats = JoinStats()
        self._decisions: OrderedDict[tuple[str, str], tuple[float, RouteDecision]] = OrderedDict()
        self._outcomes: OrderedDict[tuple[str, str], tuple[float, RequestOutcome]] = OrderedDict()
        self._joined: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._remember = remember_joined

    @property
    def pending(self) -> int:
        return len(self._decisions) + len(self._outcomes)

    def add_decision(self, decision: RouteDecision, now_s: float) -> Sample | None:
        key = (decision.decision_id, decision.instance_id)
        if key in self._joined or key in self._decisions:
            self.stats.duplicates += 1
            return None
        outcome = self._outcomes.pop(key, None)
        if outcome is None:
            self._decisions[key] = (now_s, decision)
            self._bound(self._decisions)
            return None
        return self._pair(decision, outcome[1], now_s)

    def add_outcome(self, outcome: RequestOutcome, now_s: float) -> Sample | None:
        key = (outcome.decision_id, outcome.instance_id or "")
        if key in self._joined or key in self._outcomes:
            self.stats.duplicates += 1
            return None
        decision = self._decisions.pop(key, None)
        if decision is None:
            self._outcomes[key] = (now_s, outcome)
            self._bound(self._outcomes)
            return None
        return self._pair(decision[1], outcome, now_s)

    def expire(self, now_s: float) -> int:
        """Drop entries older than the window; returns how many."""
        dropped = 0
        for side in (self._decisions, self._outcomes):
            while side and next(iter(side.values()))[0] < now_s - self.window_s:
                side.popitem(last=False)
                dropped += 1
        self.stats.expired += dropped
        return dropped

    def _bound(
        self,
        side: OrderedDict[tuple[str, str], tuple[float, RouteDecision]]
        | OrderedDict[tuple[str, str], tuple[float, RequestOutcome]],
    ) -> None:
        while len(side) > self.max_pending:
            side.popitem(last=False)
            self.stats.expired += 1

    def _pair(self, decision: RouteDecision, outcome: RequestOutcome, now_s: float) -> Sample | None:
        self._joined[(decision.decision_id, decision.instance_id)] = None
        while len(self._joined) > self._remember:
            self._joined.popitem(last=False)
        if decision.feature_schema_version != FEATURE_SCHEMA_VERSION:
            self.stats.other_schema += 1
            return None
        if outcome.status != "ok" or outcome.ttft_s is None:
            self.stats.failed += 1
            return None
        chosen = next((c for c in decision.candidates if c.instance_id == decision.instance_id), None)
        x = feature_vector(chosen.features) if chosen is not None else None
        if x is None:
            self.stats.other_schema += 1
            return None
        self.stats.joined += 1
        return Sample(x, targets(outcome.ttft_s, outcome.tpot_s, outcome.e2e_s), now_s)
