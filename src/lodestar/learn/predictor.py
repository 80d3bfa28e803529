"""Fast inference from a :class:`ModelState`: every candidate through every ensemble member in
one vectorised NumPy pass (no torch in the request path)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lodestar.learn.blob import ModelState
from lodestar.learn.features import residual_base


@dataclass(frozen=True)
class Prediction:
    """Per member and candidate, log-seconds predictions ``[members, candidates, targets]``."""

    per_member: npt.NDArray[np.float64]

    @property
    def mean(self) -> npt.NDArray[np.float64]:
        """[candidates, targets] ensemble mean."""
        out: npt.NDArray[np.float64] = self.per_member.mean(axis=0)
        return out

    @property
    def std(self) -> npt.NDArray[np.float64]:
        """[candidates, targets] ensemble spread (epistemic uncertainty)."""
        out: npt.NDArray[np.float64] = self.per_member.std(axis=0)
        return out


class Predictor:
    """Immutable once built; safe to share between decisions (swap the reference to reload)."""

    def __init__(self, state: ModelState) -> None:
        a = state.arrays
        self.state = state
        self.version = state.version
        self._w = [a["w0"].astype(np.float64), a["w1"].astype(np.float64), a["w2"].astype(np.float64)]
        self._b = [a["b0"].astype(np.float64), a["b1"].astype(np.float64), a["b2"].astype(np.float64)]
        self._x_mean = a["x_mean"].astype(np.float64)
        self._x_inv_std = 1.0 / a["x_std"].astype(np.float64)
        self._y_mean = a["y_mean"].astype(np.float64)
        self._y_std = a["y_std"].astype(np.float64)

    def predict(self, x: npt.NDArray[np.float64]) -> Prediction:
        """``x``: [candidates, features] raw features → predictions in log seconds."""
        h = (x - self._x_mean) * self._x_inv_std  # [K, F]
        h = np.maximum(np.einsum("kf,efh->ekh", h, self._w[0]) + self._b[0], 0.0)
        h = np.maximum(np.matmul(h, self._w[1]) + self._b[1], 0.0)
        out = np.matmul(h, self._w[2]) + self._b[2]  # [E, K, T]
        return Prediction(out * self._y_std + self._y_mean + residual_base(x)[np.newaxis])
