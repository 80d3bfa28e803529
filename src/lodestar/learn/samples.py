"""A decision's logged feature row → the model's input vector (shared by the live trainer
and the in-simulation trainer)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from lodestar.learn.features import FEATURE_NAMES


def feature_vector(row: Mapping[str, float] | None) -> npt.NDArray[np.float64] | None:
    """The features in schema order, or None if any is missing or not finite."""
    if row is None:
        return None
    try:
        x = np.array([row[name] for name in FEATURE_NAMES], dtype=np.float64)
    except KeyError:
        return None
    return x if bool(np.all(np.isfinite(x))) else None
