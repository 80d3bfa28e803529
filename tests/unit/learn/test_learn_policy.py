"""The Lodestar policy: fallback until confident, model use, model acceptance rules, drift,
runtime objective — and, in the simulator with fixed seeds, that it beats the heuristic."""

from __future__ import annotations

import numpy as np
import pytest

from lodestar.cluster.spec import load_cluster
from lodestar.learn.blob import ModelState
from lodestar.learn.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from lodestar.learn.objective import Objective
from lodestar.learn.policy import LodestarPolicy
from lodestar.learn.trainer import OnlineTrainer, TrainerConfig
from lodestar.plugins import full_registry, resolve_profile
from lodestar.policy.contracts import InstanceView, Outcome, RequestView
from lodestar.policy.profile_spec import build_policy
from lodestar.sim.run import run_one
from lodestar.workload.arrivals import PoissonArrivals
from lodestar.workload.generator import RequestGenerator
from lodestar.workload.lengths import UniformLengths

N = len(FEATURE_NAMES)
WORK = FEATURE_NAMES.index("work_ttft_log")


def make_policy(**params: object) -> LodestarPolicy:
    spec = resolve_profile("lodestar")
    if params:
        spec = spec.with_params("lodestar", **params)
    policy = build_policy(spec, full_registry(), seed=0)
    assert isinstance(policy, LodestarPolicy)
    return policy


def trained_state(version: int = 1, samples: int = 600, noise: float = 0.05) -> ModelState:
    """A model that learned TTFT = exp(work_ttft_log) (+ noise)."""
    rng = np.random.default_rng(version)
    trainer = OnlineTrainer(TrainerConfig(members=3, hidden=16), seed=version)
    for i in range(samples):
        x = rng.normal(size=N)
        trainer.add(x, np.array([x[WORK] + rng.normal(0, noise), -3.0, 0.0]), float(i))
    trainer.train(60, float(samples))
    return trainer.export(version)


def req(rid: str, prompt: int = 100) -> RequestView:
    return RequestView(request_id=rid, model="m", prompt_tokens=prompt, expected_output_tokens=10)


def inst(iid: str, **kw: object) -> InstanceView:
    return InstanceView(instance_id=iid, model="m", max_model_len=100_000, **kw)  # type: ignore[arg-type]


def test_falls_back_until_a_confident_model_arrives_and_logs_features_either_way() -> None:
    policy = make_policy(ready_min_samples=100)
    d = policy.decide(req("r1"), [inst("a"), inst("b")], 0.0)
    assert d.fallback and d.model_version is None and d.feature_schema_version == FEATURE_SCHEMA_VERSION
    assert set(d.features) == {"a", "b"} and set(FEATURE_NAMES) <= set(d.features["a"])
    assert policy.load_model(trained_state(1))
    d2 = policy.decide(req("r2"), [inst("a"), inst("b")], 1.0)
    assert not d2.fallback and d2.model_version == 1
    assert "pred.log_ttft_s" in d2.features["a"] and 0 < d2.propensity <= 1


def test_model_acceptance_rules() -> None:
    policy = make_policy(ready_min_samples=100, ready_max_val_mae=0.3)
    assert not policy.load_model(trained_state(1, samples=60))  # too few samples
    assert not policy.load_model(trained_state(1, noise=2.0))  # held-out error too high
    good = trained_state(2)
    assert policy.load_model(good) and policy.model_version == 2
    assert not policy.load_model(trained_state(1))  # older than the active one
    other = ModelState(version=5, arrays=good.arrays, feature_schema_version=FEATURE_SCHEMA_VERSION + 1)
    assert not policy.load_model(other) and policy.rejected_models == 1
    assert policy.model_version == 2


def test_prefers_the_instance_with_less_pending_work() -> None:
    policy = make_policy(ready_min_samples=100, epsilon_start=0.0, epsilon_min=0.0, thompson=False)
    policy.load_model(trained_state(1))
    assert policy.decide(req("big", prompt=50_000), [inst("a")], 0.0).instance_id == "a"
    # a now has 50k tokens waiting for their first token; b has nothing
    assert policy.decide(req("small"), [inst("a"), inst("b")], 0.1).instance_id == "b"
    policy.on_first_token("big", "a", 1.0)
    assert policy.features.ledger.pending_prefill_tokens("a") == 0


def flat_state() -> ModelState:
    """A model that learned, while queues were empty, that TTFT does not depend on queued work
    (≈ 50 ms, less where more requests run)."""
    rng = np.random.default_rng(7)
    trainer = OnlineTrainer(TrainerConfig(members=3, hidden=16), seed=7)
    running, pending = FEATURE_NAMES.index("running_log"), FEATURE_NAMES.index("pending_prefill_tokens_log")
    for i in range(600):
        x = rng.normal(size=N)
        x[running], x[pending], x[WORK] = rng.uniform(0, 3), rng.uniform(0, 11), rng.uniform(-5, 2)
        trainer.add(x, np.array([np.log(0.05) - x[running], -3.0, 0.0]), float(i))
    trainer.train(400, 600.0)
    return trainer.export(1)


@pytest.mark.parametrize(("floor", "chosen"), [(0.5, "b"), (0.0, "a")])
def test_queued_work_floors_the_prediction_so_a_flat_model_cannot_herd(floor: float, chosen: str) -> None:
    policy = make_policy(ready_min_samples=100, epsilon_start=0.0, epsilon_min=0.0, thompson=False,
                         work_floor_frac=floor)  # fmt: skip
    assert policy.load_model(flat_state())
    policy.decide(req("big", prompt=50_000), [inst("a")], 0.0)  # 50k tokens queued on a: ~5 s of work
    d = policy.decide(req("small"), [inst("a", num_running=10), inst("b")], 0.1)
    assert d.instance_id == chosen  # without the floor the model prefers a, queue or not
    if floor:
        assert np.exp(d.features["a"]["pred.log_ttft_s"]) >= floor * np.exp(d.features["a"]["work_ttft_log"])


def drifted_policy() -> LodestarPolicy:
    """A policy whose model predicted every TTFT 100x too short, for 20 requests."""
    policy = make_policy(ready_min_samples=100, drift_window=5, epsilon_start=0.0, epsilon_min=0.0)
    policy.load_model(trained_state(1))
    for k in range(20):
        d = policy.decide(req(f"r{k}"), [inst("a"), inst("b")], float(k))
        policy.on_first_token(f"r{k}", d.instance_id, float(k))
        predicted = np.exp(d.features[d.instance_id]["pred.log_ttft_s"]) if not d.fallback else 1.0
        policy.on_outcome(Outcome(f"r{k}", d.instance_id, 100, 10, predicted * 100, 0.01, predicted * 101), float(k))
    return policy


def test_drift_in_live_error_takes_control_from_the_model_until_a_newer_one_arrives() -> None:
    policy = drifted_policy()
    assert policy.in_drift_fallback and not policy.confident
    d = policy.decide(req("after"), [inst("a"), inst("b")], 30.0)
    assert d.fallback and d.model_version is None and "pred.log_ttft_s" not in d.features["a"]
    assert policy.load_model(trained_state(2))  # a newer model takes over again
    assert not policy.decide(req("newer"), [inst("a"), inst("b")], 31.0).fallback


def test_in_drift_requests_go_to_the_least_queued_work_at_measured_speed_not_to_the_heuristic() -> None:
    """Drift is what an overload burst beyond the training data looks like; the cold-start
    heuristic (least-request) is blind to speed and would fill the slow instance's queue."""
    policy = drifted_policy()
    for _ in range(30):
        policy.features.stats.observe("slow", 1_000, 1.0, 0.05)  # 1k prefill tokens/s
        policy.features.stats.observe("fast", 1_000, 0.05, 0.01)  # 20k prefill tokens/s
    views = [inst("slow"), inst("fast", inflight_requests=3, num_running=3)]
    assert policy.fallback.decide(req("probe"), views, 40.0).instance_id == "slow"  # the heuristic's choice
    d = policy.decide(req("r", prompt=2_000), views, 40.0)
    assert d.fallback and d.instance_id == "fast" and d.propensity == 1.0
    assert d.scores["fast"] > d.scores["slow"]
    # the work it sent there counts: enough of it, and the slow instance is the shorter queue
    policy.decide(req("big", prompt=90_000), [inst("fast")], 40.1)  # 4.5 s of work at 20k/s
    assert policy.decide(req("next", prompt=2_000), views, 40.2).instance_id == "slow"


def test_objective_can_change_at_runtime() -> None:
    policy = make_policy()
    policy.set_objective(Objective(ttft=0.0, e2e=1.0))
    assert policy.objective.e2e == 1.0
    with pytest.raises(ValueError, match="at least one"):
        Objective(ttft=0.0)


def test_learned_policy_beats_least_request_on_a_heterogeneous_fleet() -> None:
    """Fixed seeds and a fixed workload: the learned policy, from a cold start, must end with a
    lower mean TTFT than least-request on an H100 + A10G fleet (the A10G prefills ~12x slower)."""
    cluster = load_cluster("mini-hetero2")
    gen = RequestGenerator(UniformLengths("u", 500, 4000, 20, 120), seed=11)
    requests = gen.generate(PoissonArrivals(rate_rps=5.0, seed=11).times(150.0))
    learned = run_one(cluster, requests, "lodestar", seed=0)
    heuristic = run_one(cluster, requests, "least-request", seed=0)
    assert learned.published, "the in-simulation trainer published no model"
    assert any(not r.fallback for r in learned.result.records), "the model never took over"
    assert learned.summary.ttft_mean_s < 0.8 * heuristic.summary.ttft_mean_s
