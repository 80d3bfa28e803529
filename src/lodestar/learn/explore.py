"""Exploration with exact propensities: Thompson sampling over ensemble members mixed with
decaying ε-greedy over the *plausible* candidates.

Per decision: with probability ε a uniformly random plausible candidate (one whose most
optimistic member cost is within ``plausible_slack`` × the best mean cost — exploring an
instance that every member predicts to be far worse only burns latency); otherwise a member
is drawn uniformly and its cheapest candidate is taken (Thompson). The propensity of the
choice is therefore exactly ``ε·[plausible]/|plausible| + (1−ε)·(members choosing it)/E``.
ε decays by half every ``epsilon_half_life`` decisions down to ``epsilon_min``; a boost (set
by drift detection) multiplies it. Deterministic under ``seed``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ExploreConfig:
    epsilon_start: float = 0.05
    epsilon_min: float = 0.005
    epsilon_half_life: float = 2000.0
    thompson: bool = True
    plausible_slack: float = 2.0


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    propensity: float
    explore: bool


class Explorer:
    def __init__(self, config: ExploreConfig, seed: int = 0) -> None:
        self.config = config
        self._rng = random.Random(seed)
        self.decisions = 0
        self.boost = 1.0

    @property
    def epsilon(self) -> float:
        c = self.config
        eps: float = c.epsilon_start * 0.5 ** (self.decisions / c.epsilon_half_life)
        return min(1.0, max(eps, c.epsilon_min) * self.boost)

    def choose(self, member_costs: npt.NDArray[np.float64], mean_cost: npt.NDArray[np.float64]) -> Choice:
        """``member_costs`` [members, K], ``mean_cost`` [K]; lower is better."""
        members, k = member_costs.shape
        eps = self.epsilon if k > 1 else 0.0
        self.decisions += 1
        best = int(np.argmin(mean_cost))
        if self.config.thompson:
            member_best = np.argmin(member_costs, axis=1)
            thompson_p = np.bincount(member_best, minlength=k) / members
        else:
            member_best = np.full(members, best)
            thompson_p = np.zeros(k)
            thompson_p[best] = 1.0
        optimistic = member_costs.min(axis=0)
        plausible = np.flatnonzero(optimistic <= self.config.plausible_slack * mean_cost[best])
        if best not in plausible:  # cannot happen for a finite slack ≥ 1, kept for safety
            plausible = np.append(plausible, best)
        if eps > 0 and self._rng.random() < eps:
            index = int(plausible[self._rng.randrange(len(plausible))])
        else:
            index = int(member_best[self._rng.randrange(members)])
        p = (1.0 - eps) * float(thompson_p[index])
        if index in plausible:
            p += eps / len(plausible)
        return Choice(index=index, propensity=min(1.0, max(p, 1e-9)), explore=index != best)
