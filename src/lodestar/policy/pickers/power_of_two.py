"""The ``power-of-two`` baseline: two distinct candidates drawn uniformly at random, the one
with fewer router-side in-flight requests wins, ties go to the first drawn (SGLang's
``power_of_two`` without its ``/v1/loads`` token loads, which our hosts do not expose).

Propensity, exact: over the n(n−1) equally likely ordered pairs, candidate i wins (i, j) when
cᵢ ≤ cⱼ and (j, i) when cᵢ < cⱼ, so P(i) = (#{j≠i: cᵢ ≤ cⱼ} + #{j≠i: cᵢ < cⱼ}) / (n(n−1)).
A single candidate is chosen with propensity 1.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Pick, Picker
from lodestar.policy.params import SeededParams


def win_probability(loads: Sequence[int], i: int) -> float:
    n = len(loads)
    if n == 1:
        return 1.0
    mine = loads[i]
    wins = sum((mine <= c) + (mine < c) for j, c in enumerate(loads) if j != i)
    return wins / (n * (n - 1))


class PowerOfTwoPicker(Picker):
    def __init__(self, params: SeededParams) -> None:
        self.params = params
        self._rng = random.Random(params.seed)

    def pick(
        self, request: RequestView, candidates: Sequence[InstanceView], totals: Sequence[float], now_s: float
    ) -> Pick:
        n = len(candidates)
        if n == 1:
            return Pick(0)
        a, b = self._rng.sample(range(n), 2)
        loads = [c.inflight_requests for c in candidates]
        index = b if loads[b] < loads[a] else a
        top = max(loads) or 1
        return Pick(index, propensity=win_probability(loads, index), scores=[(top - c) / top for c in loads])
