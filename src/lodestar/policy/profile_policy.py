"""The profile engine: a :class:`Policy` that runs filters → scorers → picker.

Decision scores: each scorer's output is clamped to [0, 1] (NaN → 0), the candidate's total
is ``Σ wᵢ·sᵢ / Σ wᵢ`` over the profile's scorers (weights ≥ 0), which lies in [0, 1] because
it is a weighted mean of values in [0, 1]. With no scorers (or all weights 0) every candidate's
total is 1.0. ``Decision.scores`` are these totals for every candidate that passed the filters,
unless the picker reports its own scores (cache-aware pickers that ignore totals do), which
are clamped the same way. ``Decision.features`` holds each scorer's clamped score under its
entry name and the plugins' named features as ``<entry>.<feature>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lodestar.policy.contracts import Decision, InstanceView, NoCandidateError, Outcome, Policy, RequestView
from lodestar.policy.framework import Filter, Picker, Scorer


@dataclass(frozen=True, slots=True)
class NamedFilter:
    name: str
    plugin: Filter


@dataclass(frozen=True, slots=True)
class WeightedScorer:
    name: str
    weight: float
    plugin: Scorer


def clamp01(value: float) -> float:
    """``value`` clamped to [0, 1]; NaN becomes 0."""
    if math.isnan(value):
        return 0.0
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else value


class ProfilePolicy(Policy):
    """Filters narrow, scorers score, the picker picks; hooks reach every plugin."""

    def __init__(
        self,
        name: str,
        filters: Sequence[NamedFilter],
        scorers: Sequence[WeightedScorer],
        picker: Picker,
        picker_name: str = "picker",
    ) -> None:
        if any(s.weight < 0 or not math.isfinite(s.weight) for s in scorers):
            raise ValueError("scorer weights must be finite and >= 0")
        self.name = name
        self.filters = tuple(filters)
        self.scorers = tuple(scorers)
        self.picker = picker
        self.picker_name = picker_name
        self._weight_sum = sum(s.weight for s in self.scorers)

    def decide(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Decision:
        if not candidates:
            raise NoCandidateError(request.request_id, "the candidate list is empty")
        pool: Sequence[InstanceView] = candidates
        for f in self.filters:
            before_pool = pool
            pool = f.plugin.filter(request, pool, now_s)
            if not pool:
                raise NoCandidateError(
                    request.request_id, f"filter {f.name!r}: {f.plugin.none_left(request, before_pool)}"
                )
        n = len(pool)
        features: dict[str, list[float]] = {}
        cached: Sequence[int] | None = None
        if self._weight_sum > 0:
            totals = [0.0] * n
            for s in self.scorers:
                out = s.plugin.score(request, pool, now_s)
                if len(out.scores) != n:
                    raise RuntimeError(f"scorer {s.name!r} returned {len(out.scores)} scores for {n} candidates")
                clamped = [clamp01(v) for v in out.scores]
                features[s.name] = clamped
                for key, values in out.features.items():
                    features[f"{s.name}.{key}"] = [float(v) for v in values]
                if cached is None and out.cached_tokens is not None:
                    cached = out.cached_tokens
                if s.weight:
                    w = s.weight
                    for i, v in enumerate(clamped):
                        totals[i] += w * v
            inv = 1.0 / self._weight_sum
            totals = [clamp01(t * inv) for t in totals]
        else:
            totals = [1.0] * n
        pick = self.picker.pick(request, pool, totals, now_s)
        if not 0 <= pick.index < n:
            raise RuntimeError(f"picker {self.picker_name!r} chose index {pick.index} of {n} candidates")
        if not 0.0 < pick.propensity <= 1.0:
            raise RuntimeError(f"picker {self.picker_name!r} reported propensity {pick.propensity}")
        for key, values in pick.features.items():
            features[f"{self.picker_name}.{key}"] = [float(v) for v in values]
        if pick.cached_tokens is not None:
            cached = pick.cached_tokens
        scores = [clamp01(v) for v in pick.scores] if pick.scores is not None else totals
        chosen = pool[pick.index]
        for s in self.scorers:
            s.plugin.on_picked(request, chosen.instance_id, now_s)
        self.picker.on_picked(request, chosen.instance_id, now_s)
        return Decision(
            instance_id=chosen.instance_id,
            scores={c.instance_id: scores[i] for i, c in enumerate(pool)},
            policy=self.name,
            propensity=pick.propensity,
            features=_per_candidate(pool, features),
            cached_prefix_tokens=int(cached[pick.index]) if cached is not None else 0,
        )

    def on_first_token(self, request_id: str, instance_id: str, now_s: float) -> None:
        for s in self.scorers:
            s.plugin.on_first_token(request_id, instance_id, now_s)
        self.picker.on_first_token(request_id, instance_id, now_s)

    def on_outcome(self, outcome: Outcome, now_s: float) -> None:
        for s in self.scorers:
            s.plugin.on_outcome(outcome, now_s)
        self.picker.on_outcome(outcome, now_s)


def _per_candidate(
    pool: Sequence[InstanceView], features: Mapping[str, Sequence[float]]
) -> dict[str, dict[str, float]]:
    if not features:
        return {}
    return {c.instance_id: {k: v[i] for k, v in features.items()} for i, c in enumerate(pool)}
