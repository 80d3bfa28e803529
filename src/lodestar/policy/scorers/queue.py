"""llm-d ``queue-scorer`` (llm-d/llm-d-inference-scheduler @520af47,
``pkg/epp/framework/plugins/scheduling/scorer/queuedepth``).

score = (max_q − q) / (max_q − min_q) over the candidates' scraped waiting-queue lengths
(``vllm:num_requests_waiting``); 1.0 for every candidate when all are equal. No parameters.
Same as llm-d, reading the last scrape (``InstanceView.num_waiting``, as stale as the scrape).
"""

from __future__ import annotations

from collections.abc import Sequence

from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Scored, Scorer
from lodestar.policy.scorers.normalize import lower_is_better


class QueueScorer(Scorer):
    def score(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Scored:
        return Scored(lower_is_better([float(c.num_waiting) for c in candidates]))
