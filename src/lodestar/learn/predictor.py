"""Fast inference from a :class:`ModelState`: every candidate through every ensemble member in
one vectorised NumPy pass (no torch in the request path)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lodestar.learn.blob import ModelState
from lodestar.learn.features import residual_base


class Prediction:
    """Log-seconds predictions: ``per_member`` [members, candidates, targets], their ensemble
    ``mean`` and spread ``std`` (epistemic uncertainty) [candidates, targets]."""

    __slots__ = ("mean", "per_member", "std")

    def __init__(self, per_member: npt.NDArray[np.float64]) -> None:
        self.per_member = per_member
        self.mean: npt.NDArray[np.float64] = per_member.mean(axis=0)
        self.std: npt.NDArray[np.float64] = np.sqrt(np.maximum((per_member**2).mean(axis=0) - self.mean**2, 0.0))


class Predictor:
    """Immutable once built; safe to share between decisions (swap the reference to reload)."""

    def __init__(self, state: ModelState) -> None:
        a = state.arrays
        self.state = state
        self.version = state.version
        w0, w1, w2 = (a[k].astype(np.float64) for k in ("w0", "w1", "w2"))
        b0, b1, b2 = (a[k].astype(np.float64) for k in ("b0", "b1", "b2"))
        x_mean, x_std = a["x_mean"].astype(np.float64), a["x_std"].astype(np.float64)
        y_mean, y_std = a["y_mean"].astype(np.float64), a["y_std"].astype(np.float64)
        # Fold the input and output normalisation into the first and last layers, and compute
        # in float32 (the weights were trained in float32; small matmuls run twice as fast).
        f32 = np.float32
        w0n = w0 / x_std[:, np.newaxis]
        self._w0 = w0n.astype(f32)
        self._b0 = (b0 - np.matmul(x_mean, w0n)[:, np.newaxis, :]).astype(f32)
        self._w1, self._b1 = w1.astype(f32), b1.astype(f32)
        self._w2 = (w2 * y_std).astype(f32)
        self._b2 = (b2 * y_std + y_mean).astype(f32)

    def predict(
        self, x: npt.NDArray[np.float64], ttft_floor_log_s: npt.NDArray[np.float64] | None = None
    ) -> Prediction:
        """``x``: [candidates, features] raw features → predictions in log seconds; with
        ``ttft_floor_log_s`` [candidates] every member's log TTFT is raised to at least it."""
        x32 = x.astype(np.float32)
        h = np.maximum(np.matmul(x32, self._w0) + self._b0, 0.0)  # [K, F] × [E, F, H] → [E, K, H]
        h = np.maximum(np.matmul(h, self._w1) + self._b1, 0.0)
        out = np.matmul(h, self._w2) + self._b2  # [E, K, T]
        per_member = out.astype(np.float64) + residual_base(x)[np.newaxis]
        if ttft_floor_log_s is not None:
            np.maximum(per_member[..., 0], ttft_floor_log_s[np.newaxis, :], out=per_member[..., 0])
        return Prediction(per_member)
