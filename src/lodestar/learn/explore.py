"""Exploration with exact propensities: Thompson sampling over ensemble members mixed with
decaying ε-greedy over the *plausible* candidates.

Per decision: with probability ε a uniformly random plausible candidate (one whose most
optimistic member cost is within ``plausible_slack`` × the best mean cost — exploring an
instance that every member predicts to be far worse only burns latency); otherwise a member
is drawn uniformly and its cheapest candidate is taken (Thompson). The propensity of the
choice is therefore exactly ``ε·[plausible]/|plausible| + (1−ε)·(members choosing it)/E``.
ε decays by half every ``epsilon_half_life`` decisions down to ``epsilon_min``; a boost (set
by drift detection) multiplies it.

Exploration is spent where it is cheap: with best mean cost ``c`` (seconds), both ε and the
Thompson draw are used only with probability ``q = min(1, explore_budget_s / c)``; otherwise
the choice is the best mean. A short prompt teaches as much about an instance's speed as a
long one, but a wrong guess costs it milliseconds, not seconds. The propensity accounts for
the whole mixture. Deterministic under ``seed``.
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
    explore_budget_s: float = 0.25


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

    def distribution(
        self, member_costs: npt.NDArray[np.float64], mean_cost: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """The probability of choosing each candidate at the current ε (sums to 1)."""
        return np.array(self._plan(member_costs, mean_cost).dist, dtype=np.float64)

    def choose(self, member_costs: npt.NDArray[np.float64], mean_cost: npt.NDArray[np.float64]) -> Choice:
        """``member_costs`` [members, K], ``mean_cost`` [K]; lower is better."""
        plan = self._plan(member_costs, mean_cost)
        self.decisions += 1
        rng = self._rng
        if plan.eps > 0 and rng.random() < plan.eps:
            index = plan.plausible[rng.randrange(len(plan.plausible))]
        elif self.config.thompson and rng.random() < plan.q:
            index = plan.member_best[rng.randrange(len(plan.member_best))]
        else:
            index = plan.best
        p = plan.dist[index]
        return Choice(index=index, propensity=min(1.0, max(p, 1e-9)), explore=index != plan.best)

    def _plan(self, member_costs: npt.NDArray[np.float64], mean_cost: npt.NDArray[np.float64]) -> _Plan:
        """In plain Python on lists: a few members × a few dozen candidates, where each NumPy
        call would cost more than the arithmetic. Ties go to the lowest index (as argmin)."""
        rows: list[list[float]] = member_costs.tolist()
        means: list[float] = mean_cost.tolist()
        members, k = len(rows), len(means)
        best = _argmin(means)
        budget = self.config.explore_budget_s
        q = 1.0 if budget <= 0 else min(1.0, budget / max(means[best], 1e-9))
        eps = self.epsilon * q if k > 1 else 0.0
        member_best = [_argmin(row) for row in rows]
        if self.config.thompson:
            votes = [0] * k
            for i in member_best:
                votes[i] += 1
            exploit = [q * v / members for v in votes]
            exploit[best] += 1.0 - q
        else:
            exploit = [0.0] * k
            exploit[best] = 1.0
        bound = self.config.plausible_slack * means[best]
        plausible = [i for i, cost in enumerate(map(min, zip(*rows, strict=True))) if cost <= bound]
        if best not in plausible:  # cannot happen for a finite slack ≥ 1, kept for safety
            plausible.append(best)
        dist = [(1.0 - eps) * e for e in exploit]
        share = eps / len(plausible)
        for i in plausible:
            dist[i] += share
        return _Plan(best, q, eps, member_best, plausible, dist)


def _argmin(values: list[float]) -> int:
    return values.index(min(values))


@dataclass(frozen=True, slots=True)
class _Plan:
    best: int
    q: float
    eps: float
    member_best: list[int]
    plausible: list[int]
    dist: list[float]
