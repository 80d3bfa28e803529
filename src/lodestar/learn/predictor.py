"""Fast inference from a :class:`ModelState`: every candidate through every ensemble member in
one vectorised NumPy pass (no torch in the request path)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lodestar.learn.blob import ModelState
from lodestar.learn.features import RESIDUAL_PAIRS


class Prediction:
    """Log-seconds predictions: ``per_member`` [members, candidates, targets], their ensemble
    ``mean`` and spread ``std`` (epistemic uncertainty) [candidates, targets]."""

    __slots__ = ("mean", "per_member", "std")

    def __init__(self, per_member: npt.NDArray[np.float64]) -> None:
        # the ufuncs' reduce directly: ``ndarray.mean`` adds a Python-level wrapper per call
        # (the same sum over the same count, so the same numbers)
        members = per_member.shape[0]
        self.per_member = per_member
        self.mean: npt.NDArray[np.float64] = np.add.reduce(per_member, axis=0) / members
        spread = np.add.reduce(per_member * per_member, axis=0) / members - self.mean * self.mean
        self.std: npt.NDArray[np.float64] = np.sqrt(np.maximum(spread, 0.0, out=spread), out=spread)


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
        # in place where possible: at a few candidates each NumPy call costs more than its math
        h = np.matmul(x.astype(np.float32), self._w0)  # [K, F] × [E, F, H] → [E, K, H]
        h += self._b0
        np.maximum(h, 0.0, out=h)
        h = np.matmul(h, self._w1)
        h += self._b1
        np.maximum(h, 0.0, out=h)
        out = np.matmul(h, self._w2)  # [E, K, T]
        out += self._b2
        per_member = out.astype(np.float64)
        for t, f in RESIDUAL_PAIRS:  # column by column: a fancy-indexed add costs three times more
            per_member[..., t] += x[:, f]
        if ttft_floor_log_s is not None:
            np.maximum(per_member[..., 0], ttft_floor_log_s[np.newaxis, :], out=per_member[..., 0])
        return Prediction(per_member)
