"""Validation and bookkeeping of published models (the model-updates topic).

:func:`check_update` is pure (safe to run in a worker thread): it verifies the SHA-256 of the
weights, the blob format, the feature schema and that the blob's own version matches the
event, then decodes and validates the blob (:func:`~lodestar.learn.blob.decode_blob`: shapes,
names, NaN/Inf). Any failure raises :class:`ModelRejected` with a short ``reason`` (a metric
label) and a message. :class:`ModelStore` keeps the newest good model, so a policy switched in
later gets it at once, the metrics of recent versions, and the rejections.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from dataclasses import dataclass

from lodestar.learn.blob import BLOB_FORMAT, BlobError, ModelState, blob_sha256, decode_blob
from lodestar.learn.features import FEATURE_SCHEMA_VERSION
from lodestar_schemas.events import ModelUpdate

#: reasons a model is rejected (metric labels)
REASONS = ("sha256_mismatch", "format", "feature_schema", "invalid_blob", "version_mismatch", "undecodable")


class ModelRejected(ValueError):
    """A model update the router must not load."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


def check_update(update: ModelUpdate, expect_schema: int = FEATURE_SCHEMA_VERSION) -> ModelState:
    """The validated model state of ``update``; ModelRejected otherwise."""
    actual = blob_sha256(update.weights)
    if actual != update.weights_sha256:
        raise ModelRejected(
            "sha256_mismatch",
            f"weights hash {actual[:16]}… does not match weights_sha256 {update.weights_sha256[:16]}…",
        )
    if update.weights_format != BLOB_FORMAT:
        raise ModelRejected("format", f"weights_format {update.weights_format!r}, expected {BLOB_FORMAT!r}")
    if update.feature_schema_version != expect_schema:
        raise ModelRejected(
            "feature_schema",
            f"feature_schema_version {update.feature_schema_version} does not match the router's {expect_schema}",
        )
    try:
        state = decode_blob(update.weights, expect_schema)
    except BlobError as exc:
        raise ModelRejected("invalid_blob", str(exc)) from None
    if state.version != update.version:
        raise ModelRejected("version_mismatch", f"blob holds version {state.version}, event says {update.version}")
    return state


@dataclass(frozen=True)
class Rejection:
    version: int | None
    reason: str
    message: str


class ModelStore:
    """The newest good model, metrics of the last ``keep`` accepted versions, rejections."""

    def __init__(self, keep: int = 16) -> None:
        self.latest: ModelState | None = None
        self.accepted = 0
        self.stale = 0
        self.rejected: dict[str, int] = dict.fromkeys(REASONS, 0)
        self.last_rejection: Rejection | None = None
        self._metrics: collections.OrderedDict[int, Mapping[str, float]] = collections.OrderedDict()
        self._keep = keep

    def accept(self, state: ModelState) -> bool:
        """Keep ``state`` if it is newer than the newest held; False (counted stale) if not."""
        if self.latest is not None and state.version <= self.latest.version:
            self.stale += 1
            return False
        self.latest = state
        self.accepted += 1
        self._metrics[state.version] = dict(state.metrics)
        while len(self._metrics) > self._keep:
            self._metrics.popitem(last=False)
        return True

    def reject(self, version: int | None, reason: str, message: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        self.last_rejection = Rejection(version, reason, message)

    @property
    def latest_version(self) -> int | None:
        return self.latest.version if self.latest is not None else None

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def metrics_of(self, version: int | None) -> Mapping[str, float] | None:
        return self._metrics.get(version) if version is not None else None
