"""A fleet's measured capacity for a workload, so loads can be given as a fraction of it.

Capacity of one instance = its saturated request throughput on the workload's own requests:
requests that fit it (taken in trace order, cycled if needed) are all queued at time 0 and the
completion rate is measured between the 20th and 80th percentile completion times (ignoring
warm-up and drain). The sample holds at least four times the instance's concurrency limit
(``max_num_seqs`` or what its KV cache holds of an average request), so the measured window
is the steady state of a full engine — new prefills sharing steps with decodes — and not one
giant batch. A fleet's capacity is the sum over its instances (what a perfect router could
sustain).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lodestar.cluster.spec import ClusterSpec
from lodestar.engine.engine import Engine
from lodestar.engine.profiles import InstanceProfile
from lodestar.engine.request import EngineRequest
from lodestar.workload.request import RequestSpec


@dataclass(frozen=True)
class Capacity:
    """Requests per second: per instance id, and in all."""

    per_instance_rps: dict[str, float]

    @property
    def total_rps(self) -> float:
        return sum(self.per_instance_rps.values())


def instance_capacity_rps(profile: InstanceProfile, requests: Sequence[RequestSpec], sample: int = 400) -> float:
    """Saturated completion rate (req/s) of one instance on ``requests``."""
    fitting = [r for r in requests if r.prompt.n_tokens + r.output_tokens <= profile.context_limit]
    if len(fitting) < 10:
        return 0.0
    mean_tokens = sum(r.prompt.n_tokens + r.output_tokens for r in fitting) / len(fitting)
    concurrency = min(profile.seqs_limit, profile.kv_capacity_tokens / mean_tokens)
    n = int(min(max(sample, 4 * concurrency), 8000))
    engine = Engine(profile)
    for k in range(n):
        r = fitting[k % len(fitting)]
        rid = f"{r.request_id}#{k // len(fitting)}"
        engine.add(EngineRequest(rid, r.prompt.n_tokens, r.prompt.block_hashes(), r.output_tokens, 0.0), 0.0)
    finish: list[float] = []
    while (t := engine.plan_end_s()) is not None:
        finish.extend(f.finish_s for f in engine.advance(t).finished)
    a, b = np.percentile(finish, [20, 80])
    completed = sum(1 for f in finish if a < f <= b)
    return float(completed / (b - a)) if b > a else 0.0


def fleet_capacity(cluster: ClusterSpec, requests: Sequence[RequestSpec], sample: int = 400) -> Capacity:
    """Capacity of every instance (identical profiles are measured once)."""
    by_profile: dict[str, float] = {}
    out: dict[str, float] = {}
    for inst in cluster.instances():
        key = inst.profile.model_dump_json()
        if key not in by_profile:
            by_profile[key] = instance_capacity_rps(inst.profile, requests, sample)
        out[inst.instance_id] = by_profile[key]
    return Capacity(out)
