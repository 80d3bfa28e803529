"""A bounded replay buffer with recency-weighted sampling and per-member bootstrap weights.

The newest ``capacity`` samples are kept (a ring). Sampling draws indices with probability
proportional to ``exp(−age / recency_s)``, so the model follows drift while older data still
regularises it. Each sample carries one Poisson(1) weight per ensemble member (the online
bootstrap), fixed at insertion. Deterministic under ``seed``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class ReplayBuffer:
    def __init__(self, n_features: int, n_targets: int, members: int, capacity: int = 20_000, seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._x = np.zeros((capacity, n_features), dtype=np.float32)
        self._y = np.full((capacity, n_targets), np.nan, dtype=np.float32)
        self._t = np.zeros(capacity, dtype=np.float64)
        self._boot = np.zeros((capacity, members), dtype=np.float32)
        self._rng = np.random.default_rng(seed)
        self._next = 0
        self.size = 0
        self.total_added = 0

    def add(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], t_s: float) -> None:
        i = self._next
        self._x[i] = x
        self._y[i] = y
        self._t[i] = t_s
        self._boot[i] = self._rng.poisson(1.0, size=self._boot.shape[1])
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.total_added += 1

    def sample(
        self, batch: int, now_s: float, recency_s: float
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """(x [B, F], y [B, T], bootstrap weights [B, members])."""
        n = self.size
        if n == 0:
            raise ValueError("cannot sample an empty buffer")
        age = np.maximum(now_s - self._t[:n], 0.0)
        w = np.exp(-(age - age.min()) / recency_s)
        idx = self._rng.choice(n, size=batch, p=w / w.sum())
        return self._x[idx], self._y[idx], self._boot[idx]

    def arrays(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """All stored samples (x, y), oldest first is not guaranteed."""
        return self._x[: self.size], self._y[: self.size]
