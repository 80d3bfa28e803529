"""Shared normalisation of per-candidate values into [0, 1] scores."""

from __future__ import annotations

from collections.abc import Sequence


def lower_is_better(values: Sequence[float]) -> list[float]:
    """``(max − v) / (max − min)`` per value: 1.0 for the lowest, 0.0 for the highest, 1.0 for
    all when they are equal (llm-d's queue-scorer form; also Dynamo's normalised cost)."""
    if not values:
        return []
    hi, lo = max(values), min(values)
    if hi == lo:
        return [1.0] * len(values)
    span = hi - lo
    return [(hi - v) / span for v in values]
