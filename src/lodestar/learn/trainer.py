"""Incremental training of the ensemble predictor from joined (features, outcome) samples.

Call :meth:`OnlineTrainer.add` for every finished request (features of the chosen candidate at
decision time, targets from its outcome) and :meth:`OnlineTrainer.train` at the trainer's
cadence: each call takes a few mini-batch Adam steps on recency-weighted samples — never a
retraining from scratch. Every ``holdout_every``-th sample is kept out of training and used to
measure validation error. Normalisation is fixed from the first samples (and stored in every
exported state), so weights stay comparable across updates. Deterministic under ``seed``
(with one torch thread).
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from lodestar.learn.blob import ModelState
from lodestar.learn.buffer import ReplayBuffer
from lodestar.learn.features import FEATURE_NAMES, TARGET_NAMES, residual_base
from lodestar.learn.model import EnsembleMLP
from lodestar.learn.predictor import Predictor

_N_IN, _N_OUT = len(FEATURE_NAMES), len(TARGET_NAMES)
_TARGET_WEIGHTS = torch.tensor([1.0, 0.5, 0.5])


@dataclass(frozen=True)
class TrainerConfig:
    members: int = 5
    hidden: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-5
    batch: int = 256
    capacity: int = 20_000
    recency_s: float = 600.0
    holdout_every: int = 10
    holdout_capacity: int = 500
    min_samples: int = 32


class OnlineTrainer:
    """Owns the network, the optimiser and the replay buffer. Not thread-safe."""

    def __init__(self, config: TrainerConfig | None = None, seed: int = 0) -> None:
        self.config = cfg = config or TrainerConfig()
        self.seed = seed
        self._net = EnsembleMLP(_N_IN, _N_OUT, hidden=cfg.hidden, members=cfg.members, seed=seed)
        self._opt = torch.optim.Adam(self._net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self._buffer = ReplayBuffer(_N_IN, _N_OUT, cfg.members, capacity=cfg.capacity, seed=seed)
        self._holdout: collections.deque[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = collections.deque(
            maxlen=cfg.holdout_capacity
        )
        self._seen = 0
        self._norm: tuple[npt.NDArray[np.float32], ...] | None = None
        self.steps = 0
        self.last_loss = math.nan

    @property
    def samples(self) -> int:
        return self._seen

    @property
    def ready(self) -> bool:
        return self._norm is not None

    def add(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], t_s: float) -> None:
        """One finished request: features (raw) and targets (log seconds, NaN if unknown)."""
        if x.shape != (_N_IN,) or y.shape != (_N_OUT,):
            raise ValueError(f"sample shapes {x.shape}, {y.shape}; expected ({_N_IN},), ({_N_OUT},)")
        if not np.all(np.isfinite(x)) or not math.isfinite(float(y[0])):
            return  # a request without TTFT (failed) teaches nothing about TTFT
        self._seen += 1
        if self._seen % self.config.holdout_every == 0:
            self._holdout.append((x, y))
        else:
            self._buffer.add(x, y, t_s)

    def train(self, steps: int, now_s: float) -> float:
        """``steps`` Adam steps; returns the mean loss (NaN if too few samples yet)."""
        if self._buffer.size < self.config.min_samples or steps <= 0:
            return math.nan
        if self._norm is None:
            self._norm = self._fit_normalisation()
        x_mean, x_std, y_mean, y_std = (torch.from_numpy(a) for a in self._norm)
        total = 0.0
        for _ in range(steps):
            xb, yb, wb = self._buffer.sample(self.config.batch, now_s, self.config.recency_s)
            x = (torch.from_numpy(xb) - x_mean) / x_std
            y = (torch.from_numpy(yb - residual_base(xb).astype(np.float32)) - y_mean) / y_std
            mask = ~torch.isnan(y)
            y = torch.nan_to_num(y)
            pred = self._net(x)  # [E, B, T]
            err = (pred - y.unsqueeze(0)) ** 2 * mask.unsqueeze(0) * _TARGET_WEIGHTS
            boot = torch.from_numpy(wb).T.unsqueeze(-1)  # [E, B, 1]
            loss = (err * boot).sum() / (mask.sum() * self.config.members + 1e-9)
            self._opt.zero_grad(set_to_none=True)
            loss.backward()
            self._opt.step()
            total += float(loss.detach())
        self.steps += steps
        self.last_loss = total / steps
        return self.last_loss

    def _fit_normalisation(self) -> tuple[npt.NDArray[np.float32], ...]:
        x, y32 = self._buffer.arrays()
        y = y32 - residual_base(x)
        x_mean = x.mean(axis=0)
        x_std = np.maximum(x.std(axis=0), 0.1)
        y_mean = np.nan_to_num(np.nanmean(y, axis=0))
        y_std = np.maximum(np.nan_to_num(np.nanstd(y, axis=0), nan=1.0), 0.1)
        return tuple(a.astype(np.float32) for a in (x_mean, x_std, y_mean, y_std))

    def export(self, version: int) -> ModelState:
        """The current model as a publishable state (call only when :attr:`ready`)."""
        if self._norm is None:
            raise RuntimeError("nothing trained yet")
        arrays = {}
        for i, (w, b) in enumerate(zip(self._net.weights, self._net.biases, strict=True)):
            arrays[f"w{i}"] = w.detach().numpy().astype(np.float32).copy()
            arrays[f"b{i}"] = b.detach().numpy().astype(np.float32).copy()
        x_mean, x_std, y_mean, y_std = self._norm
        arrays.update(x_mean=x_mean, x_std=x_std, y_mean=y_mean, y_std=y_std)
        state = ModelState(version=version, arrays=arrays, trained_samples=self._seen)
        metrics = self.validate(Predictor(state))
        metrics["train_loss"] = self.last_loss if math.isfinite(self.last_loss) else 0.0
        metrics["steps"] = float(self.steps)
        return ModelState(version=version, arrays=arrays, metrics=metrics, trained_samples=self._seen)

    def validate(self, predictor: Predictor) -> dict[str, float]:
        """Held-out error of log TTFT (MAE), and the mean ensemble spread on it."""
        if not self._holdout:
            return {"val_mae_log_ttft": math.inf, "val_n": 0.0, "val_spread_log_ttft": math.inf}
        x = np.stack([h[0] for h in self._holdout])
        y = np.stack([h[1] for h in self._holdout])
        pred = predictor.predict(x)
        mae = float(np.mean(np.abs(pred.mean[:, 0] - y[:, 0])))
        return {
            "val_mae_log_ttft": mae,
            "val_n": float(len(self._holdout)),
            "val_spread_log_ttft": float(pred.std[:, 0].mean()),
        }

    def resume(self, state: ModelState) -> None:
        """Continue from a published state (trainer restart): weights and normalisation."""
        with torch.no_grad():
            for i, (w, b) in enumerate(zip(self._net.weights, self._net.biases, strict=True)):
                w.copy_(torch.from_numpy(np.asarray(state.arrays[f"w{i}"])))
                b.copy_(torch.from_numpy(np.asarray(state.arrays[f"b{i}"])))
        self._norm = tuple(
            np.asarray(state.arrays[k], dtype=np.float32) for k in ("x_mean", "x_std", "y_mean", "y_std")
        )
        self._seen = max(self._seen, state.trained_samples)
