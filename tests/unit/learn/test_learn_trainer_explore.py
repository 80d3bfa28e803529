"""Online trainer (determinism, learning, resume) and exploration (exact propensities)."""

from __future__ import annotations

import numpy as np
import pytest

from lodestar.learn.explore import ExploreConfig, Explorer
from lodestar.learn.features import FEATURE_NAMES, RESIDUAL_INDEX
from lodestar.learn.predictor import Predictor
from lodestar.learn.trainer import OnlineTrainer, TrainerConfig

N = len(FEATURE_NAMES)


def _data(n: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Targets that depend on features non-linearly (beyond the residual baseline)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = rng.normal(size=N)
        base = np.zeros(3)
        for t, idx in enumerate(RESIDUAL_INDEX):
            if idx is not None:
                base[t] = x[idx]
        y = base + np.array([np.tanh(x[0]) + 0.5 * x[4] ** 2, 0.3 * x[5], x[6] - x[7]]) + rng.normal(0, 0.05, 3)
        out.append((x, y))
    return out


def _trained(seed: int, steps: int = 100) -> OnlineTrainer:
    trainer = OnlineTrainer(TrainerConfig(members=3, hidden=32), seed=seed)
    for i, (x, y) in enumerate(_data(2000, 1)):
        trainer.add(x, y, float(i) * 0.01)
    for k in range(steps // 20):
        trainer.train(20, 20.0 + k)
    return trainer


def test_training_learns_the_residual_and_reports_held_out_error() -> None:
    trainer = _trained(0)
    state = trainer.export(version=1)
    mae = state.metrics["val_mae_log_ttft"]
    assert state.metrics["val_n"] == 200  # every 10th of 2000 samples is held out
    baseline = np.mean([abs(y[0] - x[RESIDUAL_INDEX[0]]) for x, y in _data(2000, 1)[9::10]])
    assert mae < 0.5 * baseline  # far better than the physics baseline alone
    assert trainer.steps == 100


def test_same_seed_same_model_and_resume_continues_the_same_weights() -> None:
    a, b = _trained(7, 20).export(1), _trained(7, 20).export(1)
    for k in a.arrays:
        np.testing.assert_array_equal(a.arrays[k], b.arrays[k])
    c = _trained(8, 20).export(1)
    assert not np.array_equal(a.arrays["w0"], c.arrays["w0"])
    fresh = OnlineTrainer(TrainerConfig(members=3, hidden=32), seed=99)
    fresh.resume(a)
    resumed = fresh.export(2)
    np.testing.assert_array_equal(resumed.arrays["w2"], a.arrays["w2"])
    assert resumed.trained_samples == a.trained_samples
    x = np.stack([d[0] for d in _data(5, 3)])
    np.testing.assert_allclose(Predictor(resumed).predict(x).mean, Predictor(a).predict(x).mean)


def test_bad_samples_are_rejected_or_skipped() -> None:
    trainer = OnlineTrainer(seed=0)
    with pytest.raises(ValueError, match="shapes"):
        trainer.add(np.zeros(3), np.zeros(3), 0.0)
    trainer.add(np.full(N, np.nan), np.zeros(3), 0.0)
    trainer.add(np.zeros(N), np.array([np.nan, 0.0, 0.0]), 0.0)  # no TTFT
    assert trainer.samples == 0
    assert np.isnan(trainer.train(5, 1.0)) and not trainer.ready
    with pytest.raises(RuntimeError, match="nothing trained"):
        trainer.export(1)


COSTS = [
    ("clear winner", [[1.0, 5.0, 6.0], [1.1, 4.0, 6.0], [0.9, 5.5, 7.0]], [1.0, 4.8, 6.3]),
    ("members disagree", [[1.0, 1.1, 9.0], [1.2, 1.0, 9.0], [1.1, 1.05, 9.0]], [1.1, 1.05, 9.0]),
    ("expensive request", [[10.0, 11.0, 30.0], [12.0, 10.0, 30.0], [11.0, 10.5, 30.0]], [11.0, 10.5, 30.0]),
]


@pytest.mark.parametrize(("case", "members", "mean"), COSTS, ids=[c[0] for c in COSTS])
@pytest.mark.parametrize("thompson", [True, False])
def test_propensities_are_exact(case: str, members: list[list[float]], mean: list[float], thompson: bool) -> None:
    cfg = ExploreConfig(epsilon_start=0.2, epsilon_min=0.2, thompson=thompson, explore_budget_s=2.0)
    explorer = Explorer(cfg, seed=1)
    m, mu = np.array(members), np.array(mean)
    dist = explorer.distribution(m, mu)
    assert dist.sum() == pytest.approx(1.0) and np.all(dist >= 0)
    counts = np.zeros(len(mean))
    n = 4000
    for _ in range(n):
        choice = explorer.choose(m, mu)
        counts[choice.index] += 1
        assert choice.propensity == pytest.approx(dist[choice.index])
    assert counts / n == pytest.approx(dist, abs=0.03), case
    assert dist[2] == 0.0 if case != "expensive request" else True  # implausible: never explored


def test_exploration_is_rationed_on_expensive_requests_and_decays() -> None:
    explorer = Explorer(ExploreConfig(epsilon_start=0.5, epsilon_min=0.0, epsilon_half_life=100, explore_budget_s=0.5))
    cheap = explorer.distribution(np.array([[0.1, 0.12]] * 3), np.array([0.1, 0.12]))
    dear = explorer.distribution(np.array([[10.0, 12.0]] * 3), np.array([10.0, 12.0]))
    assert cheap[1] > 10 * dear[1] > 0
    before = explorer.epsilon
    explorer.decisions = 100
    assert explorer.epsilon == pytest.approx(before / 2)
