"""llm-d ``max-score-picker`` (llm-d/llm-d-inference-scheduler @520af47,
``pkg/epp/framework/plugins/scheduling/picker/maxscore``): the highest total wins. llm-d
shuffles the candidates before a stable sort, so ties break uniformly at random; ours draws
uniformly among the tied candidates (same distribution, propensity 1/k for k tied).
``tie_break: first`` takes the first tied candidate instead (propensity 1).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Pick, Picker
from lodestar.policy.params import SeededParams


class MaxScoreParams(SeededParams):
    tie_break: Literal["random", "first"] = "random"


def argmax_ties(values: Sequence[float]) -> list[int]:
    """Indices of the maximum of ``values`` (exact float equality, as Go's sort compares)."""
    top = max(values)
    return [i for i, v in enumerate(values) if v == top]


class MaxScorePicker(Picker):
    def __init__(self, params: MaxScoreParams) -> None:
        self.params = params
        self._rng = random.Random(params.seed)

    def pick(
        self, request: RequestView, candidates: Sequence[InstanceView], totals: Sequence[float], now_s: float
    ) -> Pick:
        tied = argmax_ties(totals)
        if len(tied) == 1 or self.params.tie_break == "first":
            return Pick(tied[0])
        return Pick(tied[self._rng.randrange(len(tied))], propensity=1.0 / len(tied))
