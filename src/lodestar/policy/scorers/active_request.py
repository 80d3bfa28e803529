"""llm-d ``active-request-scorer`` (llm-d/llm-d-inference-scheduler @520af47,
``pkg/epp/framework/plugins/scheduling/scorer/activerequest``).

score = (max − c) / max over the router's own in-flight request counts c
(``InstanceView.inflight_requests``); 1.0 for all when every candidate is idle. No parameters.
With the max-score picker it is the ``least-request`` baseline (fewest in-flight wins, ties
random).
"""

from __future__ import annotations

from collections.abc import Sequence

from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Scored, Scorer


class ActiveRequestScorer(Scorer):
    def score(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Scored:
        counts = [c.inflight_requests for c in candidates]
        top = max(counts, default=0)
        if top <= 0:
            return Scored([1.0] * len(counts))
        return Scored([(top - c) / top for c in counts])
