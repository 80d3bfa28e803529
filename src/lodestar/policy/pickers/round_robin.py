"""The ``round-robin`` baseline: the k-th decision takes candidate ``k mod n`` of the current
(sorted) candidate list; deterministic (propensity 1). When candidates join or leave, the
counter carries on over the new list, as SGLang's and AIBrix's round-robin do."""

from __future__ import annotations

from collections.abc import Sequence

from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Pick, Picker


class RoundRobinPicker(Picker):
    def __init__(self) -> None:
        self._counter = 0

    def pick(
        self, request: RequestView, candidates: Sequence[InstanceView], totals: Sequence[float], now_s: float
    ) -> Pick:
        index = self._counter % len(candidates)
        self._counter += 1
        return Pick(index)
