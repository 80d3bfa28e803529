"""llm-d ``kv-cache-utilization-scorer`` (llm-d/llm-d-inference-scheduler @520af47,
``pkg/epp/framework/plugins/scheduling/scorer/kvcacheutilization``).

score = 1 − KV-cache usage (``vllm:kv_cache_usage_perc`` as a fraction). No parameters.
Same as llm-d, reading the last scrape (``InstanceView.kv_usage_frac``).
"""

from __future__ import annotations

from collections.abc import Sequence

from lodestar.policy.contracts import InstanceView, RequestView
from lodestar.policy.framework import Scored, Scorer


class KVUtilizationScorer(Scorer):
    def score(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Scored:
        return Scored([1.0 - c.kv_usage_frac for c in candidates])
