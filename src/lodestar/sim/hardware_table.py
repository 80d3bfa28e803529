"""The static per-hardware table that the ``estimated-ttft`` baseline is allowed to know:
each instance's nominal prefill speed from its engine profile (a full prefill batch)."""

from __future__ import annotations

from lodestar.cluster.spec import ClusterSpec
from lodestar.engine.steptime import StepCostModel, batch_work


def nominal_prefill_tokens_per_s(cluster: ClusterSpec) -> dict[str, float]:
    out: dict[str, float] = {}
    for inst in cluster.instances():
        budget = inst.profile.batched_tokens
        out[inst.instance_id] = budget / StepCostModel(inst.profile).step_time(*batch_work([(budget, 0)]))
    return out
