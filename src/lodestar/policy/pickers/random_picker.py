"""The ``random`` baseline: a uniformly random candidate (propensity 1/n)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Pick, Picker
from lodestar.policy.params import SeededParams


class RandomPicker(Picker):
    def __init__(self, params: SeededParams) -> None:
        self.params = params
        self._rng = random.Random(params.seed)

    def pick(
        self, request: RequestView, candidates: Sequence[InstanceView], totals: Sequence[float], now_s: float
    ) -> Pick:
        n = len(candidates)
        return Pick(self._rng.randrange(n), propensity=1.0 / n)
