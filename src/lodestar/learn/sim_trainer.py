"""The trainer inside the simulator, with the live trainer's cadence and publish delay.

Joins each decision's logged features (of the chosen candidate) with its outcome, trains
``steps_per_publish`` steps every ``publish_interval_s`` of virtual time, and hands the new
model to the policy ``publish_delay_s`` later (the Kafka hop and the router's reload), so
offline results do not flatter the live system.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lodestar.learn.blob import ModelState
from lodestar.learn.features import targets
from lodestar.learn.policy import LodestarPolicy
from lodestar.learn.samples import feature_vector
from lodestar.learn.trainer import OnlineTrainer
from lodestar.policy.contracts import Decision, Outcome, RequestView
from lodestar.sim.simulator import Simulator


@dataclass(frozen=True)
class Cadence:
    publish_interval_s: float = 5.0
    publish_delay_s: float = 1.0
    steps_per_publish: int = 25


@dataclass
class PublishRecord:
    at_s: float
    version: int
    samples: int
    metrics: dict[str, float] = field(default_factory=dict)


class SimTrainer:
    """An observer of one simulation that trains and publishes models to ``policy``."""

    def __init__(self, sim: Simulator, policy: LodestarPolicy, trainer: OnlineTrainer, cadence: Cadence) -> None:
        self.sim = sim
        self.policy = policy
        self.trainer = trainer
        self.cadence = cadence
        self.published: list[PublishRecord] = []
        self._pending: dict[str, npt.NDArray[np.float64]] = {}
        self._version = 0
        sim.observers.append(self)
        sim.call_at(cadence.publish_interval_s, self._tick)

    def on_decision(self, request: RequestView, decision: Decision, now_s: float) -> None:
        x = feature_vector(decision.features.get(decision.instance_id))
        if x is not None:
            self._pending[request.request_id] = x

    def on_outcome(self, outcome: Outcome, now_s: float) -> None:
        x = self._pending.pop(outcome.decision_id, None)
        if x is not None and outcome.error is None:
            self.trainer.add(x, targets(outcome.ttft_s, outcome.tpot_s, outcome.e2e_s), now_s)

    def _deliver(self, state: ModelState) -> None:
        self.policy.load_model(state)

    def _tick(self, now_s: float) -> None:
        self.trainer.train(self.cadence.steps_per_publish, now_s)
        if self.trainer.ready:
            self._version += 1
            state = self.trainer.export(self._version)
            metrics = {k: v for k, v in state.metrics.items() if math.isfinite(v)}
            self.published.append(PublishRecord(now_s, self._version, self.trainer.samples, metrics))
            self.sim.call_at(now_s + self.cadence.publish_delay_s, lambda _t: self._deliver(state))
        if self.sim.busy:
            self.sim.call_at(now_s + self.cadence.publish_interval_s, self._tick)
