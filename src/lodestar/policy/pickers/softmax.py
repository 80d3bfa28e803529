"""Temperature sampling over the totals — Dynamo's ``router_temperature`` (ai-dynamo/dynamo
``lib/kv-router/src/scheduling/selector/default.rs``, ``softmax_sample_index``).

Dynamo samples pᵢ ∝ exp(−(cᵢ − c_min) / ((c_max − c_min)·T)) over costs c (uniform if all
equal). With totals sᵢ = (c_max − cᵢ)/(c_max − c_min) (the ``dynamo-kv`` scorer's score) this
is pᵢ ∝ exp(sᵢ / T), which is what this picker samples; T = 0 (Dynamo's default) takes the
maximum with uniform random ties, as Dynamo's ``minimum_cost_index`` does. Propensity = pᵢ.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from pydantic import Field

from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Pick, Picker
from lodestar.policy.params import SeededParams
from lodestar.policy.pickers.max_score import argmax_ties


class SoftmaxParams(SeededParams):
    temperature: float = Field(default=0.0, ge=0.0)


def softmax_probabilities(totals: Sequence[float], temperature: float) -> list[float]:
    """pᵢ ∝ exp(sᵢ / T), computed stably; uniform when all totals are equal."""
    top = max(totals)
    weights = [math.exp((s - top) / temperature) for s in totals]
    z = sum(weights)
    return [w / z for w in weights]


class SoftmaxPicker(Picker):
    def __init__(self, params: SoftmaxParams) -> None:
        self.params = params
        self._rng = random.Random(params.seed)

    def pick(
        self, request: RequestView, candidates: Sequence[InstanceView], totals: Sequence[float], now_s: float
    ) -> Pick:
        if self.params.temperature == 0.0:
            tied = argmax_ties(totals)
            if len(tied) == 1:
                return Pick(tied[0])
            return Pick(tied[self._rng.randrange(len(tied))], propensity=1.0 / len(tied))
        probs = softmax_probabilities(totals, self.params.temperature)
        u = self._rng.random()
        acc = 0.0
        index = max(i for i, p in enumerate(probs) if p > 0.0)  # if rounding leaves u ≥ Σp
        for i, p in enumerate(probs):
            acc += p
            if u < acc and p > 0.0:
                index = i
                break
        return Pick(index, propensity=probs[index])
