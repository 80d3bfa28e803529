"""Off-policy evaluation on logged decisions: how would a target policy's mean TTFT have been,
judged only by what the logging policy did, with the propensities it logged.

For decision i with logged action a_i, propensity p_i, TTFT r_i and target policy π:
weight w_i = π(a_i | x_i) / p_i (for a deterministic target 1[π(x_i) = a_i] / p_i), and
- IPS   = (1/n) Σ w_i r_i
- SNIPS = Σ w_i r_i / Σ w_i                       (self-normalised: lower variance, small bias)
- DR    = (1/n) Σ [ r̂(x_i, π(x_i)) + w_i (r_i − r̂(x_i, a_i)) ]   (doubly robust, with a reward
  model r̂; unbiased if either the propensities or r̂ are right)
with a 95 % bootstrap percentile interval over decisions. A target policy is a function of the
logged context (each candidate's logged features), so stateful heuristics that need their own
history (prefix indexes of their own routing) are out of reach of OPE — re-simulate those.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from lodestar.learn.blob import ModelState
from lodestar.learn.objective import Objective
from lodestar.learn.predictor import Predictor
from lodestar.learn.samples import feature_vector
from lodestar.replay.logged import LoggedDecision


class TargetPolicy(Protocol):
    @property
    def name(self) -> str: ...

    def choose(self, decision: LoggedDecision) -> int | None:
        """Index of the candidate the policy would pick, or None if it cannot judge this one."""


class RewardModel(Protocol):
    def predict(self, decision: LoggedDecision) -> np.ndarray | None:
        """Predicted TTFT (s) of every candidate, or None if it cannot judge this decision."""


@dataclass(frozen=True)
class LoggedPolicy:
    """The logging policy itself, stochastic as logged: π(a|x) = p, so every weight is 1 and
    the estimate is the observed mean (a check of the pipeline, not of a policy)."""

    name: str = "logged"

    def choose(self, decision: LoggedDecision) -> int | None:
        return decision.chosen_index()

    def probability(self, decision: LoggedDecision, index: int) -> float:
        return decision.propensity if index == decision.chosen_index() else 0.0


@dataclass(frozen=True)
class FeatureArgmin:
    """Pick the candidate with the lowest logged value of one feature (e.g. ``inflight_requests_log``
    is least-request, ``work_ttft_log`` is estimated TTFT with measured speeds)."""

    feature: str

    @property
    def name(self) -> str:
        return f"min:{self.feature}"

    def choose(self, decision: LoggedDecision) -> int | None:
        values = [c.features.get(self.feature) for c in decision.candidates]
        if any(v is None for v in values):
            return None
        return int(np.argmin(np.array(values, dtype=np.float64)))


class ModelPolicy:
    """Greedy on a model state's predicted cost (the learned policy without exploration)."""

    def __init__(self, state: ModelState, objective: Objective | None = None, name: str | None = None) -> None:
        self.predictor = Predictor(state)
        self.objective = objective or Objective()
        self.name = name or f"model:v{state.version}"

    def costs(self, decision: LoggedDecision) -> np.ndarray | None:
        rows = [feature_vector(c.features) for c in decision.candidates]
        if any(r is None for r in rows):
            return None
        x = np.stack([r for r in rows if r is not None])
        pred = self.predictor.predict(x)
        return self.objective.cost(pred.mean, pred.std, 0.0)

    def choose(self, decision: LoggedDecision) -> int | None:
        costs = self.costs(decision)
        return None if costs is None else int(np.argmin(costs))

    def predict(self, decision: LoggedDecision) -> np.ndarray | None:
        rows = [feature_vector(c.features) for c in decision.candidates]
        if any(r is None for r in rows):
            return None
        pred = self.predictor.predict(np.stack([r for r in rows if r is not None]))
        return np.exp(pred.mean[:, 0])


@dataclass(frozen=True)
class Estimate:
    policy: str
    n: int
    matched: int
    observed_mean_s: float
    ips_s: float
    snips_s: float
    dr_s: float | None
    ci_low_s: float
    ci_high_s: float

    @property
    def point_s(self) -> float:
        return self.dr_s if self.dr_s is not None else self.snips_s


def evaluate(
    decisions: Sequence[LoggedDecision],
    target: TargetPolicy,
    reward: RewardModel | None = None,
    n_boot: int = 500,
    seed: int = 0,
) -> Estimate:
    """Estimates of the target's mean TTFT (s) on the decisions it can judge."""
    rows: list[tuple[float, float, float | None, float | None]] = []  # (w, r, r̂(π), r̂(a))
    for d in decisions:
        logged = d.chosen_index()
        if not d.ok or logged is None or d.ttft_s is None:
            continue
        pick = target.choose(d)
        if pick is None:
            continue
        prob = getattr(target, "probability", None)
        target_p = prob(d, logged) if prob is not None else (1.0 if pick == logged else 0.0)
        weight = target_p / max(d.propensity, 1e-6)
        hat = reward.predict(d) if reward is not None else None
        rows.append(
            (
                weight,
                float(d.ttft_s),
                None if hat is None else float(hat[pick]),
                None if hat is None else float(hat[logged]),
            )
        )
    if not rows:
        raise ValueError(f"no logged decision can be judged by {target.name} (features missing or no outcomes)")
    w = np.array([row[0] for row in rows])
    r = np.array([row[1] for row in rows])
    has_dr = reward is not None and all(x[2] is not None for x in rows)
    hat_pi = np.array([x[2] if x[2] is not None else math.nan for x in rows])
    hat_a = np.array([x[3] if x[3] is not None else math.nan for x in rows])

    def stats(idx: np.ndarray) -> tuple[float, float, float | None]:
        wi, ri = w[idx], r[idx]
        ips = float(np.mean(wi * ri))
        snips = float(np.sum(wi * ri) / np.sum(wi)) if np.sum(wi) > 0 else math.nan
        dr = float(np.mean(hat_pi[idx] + wi * (ri - hat_a[idx]))) if has_dr else None
        return ips, snips, dr

    ips, snips, dr = stats(np.arange(len(rows)))
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(rows), size=len(rows))
        _, b_snips, b_dr = stats(idx)
        value = b_dr if b_dr is not None else b_snips
        if math.isfinite(value):
            boots.append(value)
    low, high = np.percentile(boots, [2.5, 97.5]) if boots else (math.nan, math.nan)
    return Estimate(
        policy=target.name,
        n=len(rows),
        matched=int(np.count_nonzero(w)),
        observed_mean_s=float(r.mean()),
        ips_s=ips,
        snips_s=snips,
        dr_s=dr,
        ci_low_s=float(low),
        ci_high_s=float(high),
    )
