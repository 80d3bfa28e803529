"""The Lodestar routing policy: predicted latency per candidate, objective-weighted choice
with exploration, cold-start fallback and drift monitoring.

Per decision: the standard filters narrow the candidates; :class:`FeatureBuilder` computes
their features; if a confident model is loaded, the predictor scores every candidate in one
batched pass and the explorer chooses (logging its propensity); otherwise the configured
heuristic decides (``Decision.fallback``) — and the features are logged either way so the
trainer learns from heuristic decisions too.

Physics floor: no member may predict a first token sooner than ``work_floor_frac`` × the time
the prefill work queued ahead (pending uncached tokens plus the request's own, at the speed
measured for that instance) implies. A network trained while every instance answered in
~50 ms learns that TTFT does not depend on queued work and would extrapolate that to a queue it
has never seen — and send every request to the instance it happens to prefer (herding, with
feedback arriving only after the queue has formed). The floor keeps queued work visible.

Confidence: a model is used only when its held-out error (``val_mae_log_ttft``) and sample
count pass thresholds; until then the configured heuristic decides. Drift: the policy tracks
the error of its own predictions on finished requests; when it exceeds ``drift_explore_ratio``
× the model's validation error exploration is boosted, above ``drift_fallback_ratio`` × the
network's correction is dropped and each request goes to the least queued prefill work at the
speed measured for each instance (``work_ttft``, the base the network's TTFT is a residual
on) until a newer model (or the error) recovers. Not the cold-start heuristic: drift is what
an overload burst beyond anything trained on looks like, and on a heterogeneous fleet a
speed-blind heuristic (least-request) then fills the slow instances' queues — one seed of the
hetero-mix8 policy matrix at 0.85 load went from 0.70 s to 1.39 s mean TTFT (P99 5.9 s → 48 s)
that way. Models arrive through :meth:`LodestarPolicy.load_model`
(one reference swap); the objective can change at runtime (:meth:`set_objective`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydantic import Field

from lodestar.learn.blob import ModelState
from lodestar.learn.explore import ExploreConfig, Explorer
from lodestar.learn.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION, FeatureBuilder, FeatureRows
from lodestar.learn.objective import Objective
from lodestar.learn.predictor import Prediction, Predictor
from lodestar.policy.contracts import Decision, InstanceView, NoCandidateError, Outcome, Policy, RequestView
from lodestar.policy.filters import ContextLengthFilter, HealthyFilter, ModelFilter
from lodestar.policy.framework import Filter
from lodestar.policy.params import SeededParams
from lodestar.policy.scorers.normalize import lower_is_better

WORK_TTFT = FEATURE_NAMES.index("work_ttft_log")


class LodestarParams(SeededParams):
    """Parameters of the ``lodestar`` policy plugin."""

    fallback_profile: str = Field(default="least-request", description="heuristic used until the model is confident")
    objective: Objective = Field(default_factory=Objective)
    epsilon_start: float = Field(default=0.05, ge=0.0, le=1.0)
    epsilon_min: float = Field(default=0.005, ge=0.0, le=1.0)
    epsilon_half_life: float = Field(default=2000.0, gt=0.0, description="decisions per halving of ε")
    thompson: bool = True
    plausible_slack: float = Field(default=2.0, ge=1.0)
    explore_budget_s: float = Field(
        default=0.25, ge=0.0, description="explore fully when the best predicted cost is below this (s); 0 = always"
    )
    work_floor_frac: float = Field(
        default=0.5, ge=0.0, le=1.0, description="predicted TTFT ≥ this × the queued prefill work's time (0: off)"
    )
    ready_max_val_mae: float = Field(default=0.6, gt=0.0, description="max held-out MAE of log TTFT")
    ready_min_samples: int = Field(default=50, ge=1)
    drift_window: int = Field(default=100, ge=1)
    drift_explore_ratio: float = Field(default=2.0, gt=1.0)
    drift_fallback_ratio: float = Field(default=4.0, gt=1.0)
    drift_min_error: float = Field(default=0.15, gt=0.0, description="floor of the error reference (log s)")
    index_ttl_s: float = Field(default=120.0, gt=0.0, description="prefix-index entry lifetime (s), as Dynamo")
    index_engine_capacity: bool = Field(
        default=True, description="bound each instance's prefix index by the KV blocks its engine reports (LRU)"
    )
    stats_alpha: float = Field(default=0.05, gt=0.0, le=1.0)
    use_prefix_index: bool = Field(default=True, description="ablation switch: estimate cached prefixes")
    use_instance_stats: bool = Field(default=True, description="ablation switch: self-measured instance statistics")
    zero_features: list[str] = Field(default_factory=list, description="ablation: features held at 0")


class LodestarPolicy(Policy):
    name = "lodestar"

    def __init__(self, params: LodestarParams, fallback: Policy) -> None:
        self.params = params
        self.fallback = fallback
        self.objective = params.objective
        self.filters: tuple[Filter, ...] = (HealthyFilter(), ModelFilter(), ContextLengthFilter())
        self.features = FeatureBuilder(
            index_ttl_s=params.index_ttl_s,
            stats_alpha=params.stats_alpha,
            use_prefix_index=params.use_prefix_index,
            use_instance_stats=params.use_instance_stats,
            zeroed=params.zero_features,
            index_engine_capacity=params.index_engine_capacity,
        )
        self.explorer = Explorer(
            ExploreConfig(
                epsilon_start=params.epsilon_start,
                epsilon_min=params.epsilon_min,
                epsilon_half_life=params.epsilon_half_life,
                thompson=params.thompson,
                plausible_slack=params.plausible_slack,
                explore_budget_s=params.explore_budget_s,
            ),
            seed=params.seed,
        )
        self._predictor: Predictor | None = None
        self._reference_error = math.inf
        self._live_error: float | None = None
        self._predicted: dict[str, float] = {}
        self.in_drift_fallback = False
        self.rejected_models = 0

    # --- models and objective --------------------------------------------------------------

    @property
    def model_version(self) -> int | None:
        return self._predictor.version if self._predictor is not None else None

    def load_model(self, state: ModelState) -> bool:
        """Use ``state`` if it is newer and confident enough; True if it was swapped in."""
        if state.feature_schema_version != FEATURE_SCHEMA_VERSION:
            self.rejected_models += 1
            return False
        current = self._predictor
        if current is not None and state.version <= current.version:
            return False
        mae = state.metrics.get("val_mae_log_ttft", math.inf)
        if mae > self.params.ready_max_val_mae or state.trained_samples < self.params.ready_min_samples:
            return False
        self._predictor = Predictor(state)
        self._reference_error = max(mae, self.params.drift_min_error)
        if self.in_drift_fallback:
            self.in_drift_fallback = False
            self._live_error = None
        return True

    def set_objective(self, objective: Objective) -> None:
        self.objective = objective

    @property
    def confident(self) -> bool:
        return self._predictor is not None and not self.in_drift_fallback

    # --- decisions -------------------------------------------------------------------------

    def decide(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Decision:
        if not candidates:
            raise NoCandidateError(request.request_id, "the candidate list is empty")
        pool: Sequence[InstanceView] = candidates
        for f in self.filters:
            before = pool
            pool = f.filter(request, pool, now_s)
            if not pool:
                raise NoCandidateError(request.request_id, f.none_left(request, before))
        feats = self.features.build(request, pool, now_s)
        ids = [c.instance_id for c in pool]
        extra: dict[str, Sequence[float]] = {}
        predictor = self._predictor
        if predictor is None:
            d = self.fallback.decide(request, pool, now_s)
            index = next(i for i, c in enumerate(pool) if c.instance_id == d.instance_id)
            scores = {c.instance_id: d.scores.get(c.instance_id, 0.0) for c in pool}
            propensity, explore, fallback, version = d.propensity, False, True, None
        elif self.in_drift_fallback:
            work: list[float] = feats.x[:, WORK_TTFT].tolist()
            index = work.index(min(work))
            scores = dict(zip(ids, lower_is_better(work), strict=True))
            propensity, explore, fallback, version = 1.0, False, True, None
            shadow = self._predict(predictor, feats.x[index : index + 1])  # lets recovery be noticed
            self._predicted[request.request_id] = float(shadow.mean[0, 0])
        else:
            pred = self._predict(predictor, feats.x)
            out = float(request.expected_output_tokens or 0)
            mean_cost = self.objective.cost(pred.mean, pred.std, out)
            member_cost = self.objective.cost(pred.per_member, pred.std[np.newaxis], out)
            choice = self.explorer.choose(member_cost, mean_cost)
            index, propensity, explore = choice.index, choice.propensity, choice.explore
            scores = dict(zip(ids, lower_is_better(mean_cost.tolist()), strict=True))
            fallback, version = False, predictor.version
            log_ttft: list[float] = pred.mean[:, 0].tolist()
            extra = {
                "pred.log_ttft_s": log_ttft,
                "pred.log_ttft_spread": pred.std[:, 0].tolist(),
                "predicted_ttft_s": [math.exp(v) for v in log_ttft],  # seconds, for the prediction-error panel
            }
            self._predicted[request.request_id] = log_ttft[index]
        chosen = pool[index]
        self.features.on_picked(
            request, chosen.instance_id, feats.uncached_tokens[index], feats.pending_tokens[index], now_s
        )
        return Decision(
            instance_id=chosen.instance_id,
            scores=scores,
            policy=self.name,
            propensity=propensity,
            explore=explore,
            fallback=fallback,
            model_version=version,
            feature_schema_version=FEATURE_SCHEMA_VERSION,
            features=FeatureRows(ids, feats.x, extra),
            cached_prefix_tokens=request.prompt_tokens - feats.uncached_tokens[index],
        )

    def _predict(self, predictor: Predictor, x: np.ndarray) -> Prediction:
        frac = self.params.work_floor_frac
        return predictor.predict(x, x[:, WORK_TTFT] + math.log(frac) if frac > 0 else None)

    # --- feedback --------------------------------------------------------------------------

    def on_first_token(self, request_id: str, instance_id: str, now_s: float) -> None:
        self.features.on_first_token(request_id)
        self.fallback.on_first_token(request_id, instance_id, now_s)

    def on_outcome(self, outcome: Outcome, now_s: float) -> None:
        self.features.on_outcome(outcome)
        self.fallback.on_outcome(outcome, now_s)
        predicted = self._predicted.pop(outcome.decision_id, None)
        if predicted is None or outcome.ttft_s is None or outcome.ttft_s <= 0:
            return
        self._track_drift(abs(math.log(outcome.ttft_s) - predicted))

    def _track_drift(self, error: float) -> None:
        alpha = 2.0 / (self.params.drift_window + 1)
        self._live_error = error if self._live_error is None else self._live_error + alpha * (error - self._live_error)
        ratio = self._live_error / self._reference_error
        self.explorer.boost = 4.0 if ratio > self.params.drift_explore_ratio else 1.0
        if ratio > self.params.drift_fallback_ratio:
            self.in_drift_fallback = True
        elif self.in_drift_fallback and ratio < self.params.drift_explore_ratio:
            self.in_drift_fallback = False

    @property
    def live_error(self) -> float | None:
        """EWMA of |log TTFT − prediction| over recent model decisions (log seconds)."""
        return self._live_error
