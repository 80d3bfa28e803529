"""Run one or more policies over one workload on one cluster, with several seeds — the
engine behind ``lodestar sim`` and the benchmarks. Policies come from the same profiles the
live router uses; a learned policy is trained in-simulation with the live trainer's cadence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from lodestar.cluster.spec import ClusterSpec
from lodestar.learn.policy import LodestarPolicy
from lodestar.learn.sim_trainer import Cadence, PublishRecord, SimTrainer
from lodestar.learn.trainer import OnlineTrainer
from lodestar.plugins import full_registry, resolve_profile
from lodestar.policy.contracts import Policy
from lodestar.policy.profile_spec import build_policy
from lodestar.sim.capacity import fleet_capacity
from lodestar.sim.hardware_table import nominal_prefill_tokens_per_s
from lodestar.sim.results import Summary
from lodestar.sim.simulator import SimConfig, SimResult, Simulator
from lodestar.workload.faults import InstanceFault
from lodestar.workload.request import RequestSpec
from lodestar.workload.transform import mean_rate_rps, scale_to_rate


def make_policy(profile: str, cluster: ClusterSpec, seed: int) -> Policy:
    """A fresh policy from a profile name or file; ``estimated-ttft`` entries get the
    cluster's hardware table (the one baseline allowed to know it)."""
    spec = resolve_profile(profile)
    for ref in spec.scorers:
        if ref.type == "estimated-ttft":
            spec = spec.with_params(ref.key, prefill_tokens_per_s=nominal_prefill_tokens_per_s(cluster))
    return build_policy(spec, full_registry(), seed=seed)


@dataclass
class PolicyRun:
    profile: str
    seed: int
    result: SimResult
    published: list[PublishRecord] = field(default_factory=list)

    @property
    def summary(self) -> Summary:
        return self.result.summary


def run_one(
    cluster: ClusterSpec,
    requests: Sequence[RequestSpec],
    profile: str,
    seed: int,
    config: SimConfig | None = None,
    faults: Sequence[InstanceFault] = (),
    cadence: Cadence | None = None,
) -> PolicyRun:
    torch.manual_seed(seed)
    policy = make_policy(profile, cluster, seed)
    sim = Simulator(cluster, policy, config, faults=faults)
    trainer = None
    if isinstance(policy, LodestarPolicy):
        trainer = SimTrainer(sim, policy, OnlineTrainer(seed=seed), cadence or Cadence())
    result = sim.run(requests)
    return PolicyRun(profile, seed, result, trainer.published if trainer else [])


@dataclass(frozen=True)
class LoadPlan:
    """How the workload's arrival rate is set: as a fraction of the fleet's measured capacity
    (``load``), as an absolute rate, or left as is."""

    load: float | None = None
    rate_rps: float | None = None


def apply_load(
    cluster: ClusterSpec, requests: Sequence[RequestSpec], plan: LoadPlan
) -> tuple[list[RequestSpec], float | None]:
    """(rescaled requests, fleet capacity in req/s if it was measured)."""
    if plan.load is not None:
        capacity = fleet_capacity(cluster, requests).total_rps
        if capacity <= 0:
            raise ValueError(f"cluster {cluster.name} cannot serve any request of this workload")
        return scale_to_rate(requests, plan.load * capacity), capacity
    if plan.rate_rps is not None:
        return scale_to_rate(requests, plan.rate_rps), None
    return list(requests), None


def aggregate(runs: Sequence[PolicyRun]) -> dict[str, dict[str, dict[str, float]]]:
    """profile → metric → {mean, std, min, max} over seeds."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for profile in dict.fromkeys(r.profile for r in runs):
        rows = [r.summary.model_dump() for r in runs if r.profile == profile]
        metrics: dict[str, dict[str, float]] = {}
        for key, value in rows[0].items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                vals = np.array([row[key] for row in rows], dtype=float)
                metrics[key] = {
                    "mean": float(vals.mean()),
                    "std": float(vals.std()),
                    "min": float(vals.min()),
                    "max": float(vals.max()),
                }
        out[profile] = metrics
    return out


def workload_rate(requests: Sequence[RequestSpec]) -> float | None:
    return mean_rate_rps(requests) if len(requests) > 1 else None
