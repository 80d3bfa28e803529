"""Versioned, self-describing model state: what the trainer publishes and the router loads.

Format ``lodestar-mlp-ensemble/1``: a NumPy ``.npz`` archive (loaded with
``allow_pickle=False``, so a hostile blob cannot run code) holding the stacked ensemble
weights and biases, the feature and target normalisation, and a JSON header (format, feature
schema version and names, target names, layer sizes, version, training metrics).
:func:`decode_blob` validates everything the router relies on and raises
:class:`BlobError` naming the problem.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from lodestar.learn.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION, RESIDUAL_OF, TARGET_NAMES

BLOB_FORMAT = "lodestar-mlp-ensemble/1"
_ARRAYS = ("w0", "b0", "w1", "b1", "w2", "b2", "x_mean", "x_std", "y_mean", "y_std")
MAX_BLOB_BYTES = 8 * 1024 * 1024


class BlobError(ValueError):
    """A model blob the router must not load; the message says why."""


@dataclass(frozen=True)
class ModelState:
    """Everything needed to predict: stacked layer arrays and normalisation, plus metadata."""

    version: int
    arrays: Mapping[str, npt.NDArray[np.float32]]
    feature_names: tuple[str, ...] = FEATURE_NAMES
    feature_schema_version: int = FEATURE_SCHEMA_VERSION
    target_names: tuple[str, ...] = TARGET_NAMES
    metrics: Mapping[str, float] = field(default_factory=dict)
    trained_samples: int = 0

    @property
    def members(self) -> int:
        return int(self.arrays["w0"].shape[0])


def encode_blob(state: ModelState) -> bytes:
    header = {
        "format": BLOB_FORMAT,
        "version": state.version,
        "feature_schema_version": state.feature_schema_version,
        "feature_names": list(state.feature_names),
        "target_names": list(state.target_names),
        "metrics": dict(state.metrics),
        "trained_samples": state.trained_samples,
        "residual_of": list(RESIDUAL_OF),
    }
    buf = io.BytesIO()
    arrays = {k: np.asarray(state.arrays[k], dtype=np.float32) for k in _ARRAYS}
    header_bytes = np.frombuffer(json.dumps(header, sort_keys=True).encode(), dtype=np.uint8)
    np.savez(buf, header=header_bytes, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def blob_sha256(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def decode_blob(blob: bytes, expect_schema: int = FEATURE_SCHEMA_VERSION) -> ModelState:
    """Parse and validate a blob: format, feature schema and names, shapes, finite values."""
    if len(blob) > MAX_BLOB_BYTES:
        raise BlobError(f"blob of {len(blob)} bytes exceeds {MAX_BLOB_BYTES}")
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            header: dict[str, Any] = json.loads(bytes(npz["header"]).decode())
            arrays = {k: np.asarray(npz[k], dtype=np.float32) for k in _ARRAYS}
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise BlobError(f"not a {BLOB_FORMAT} archive: {exc}") from None
    if header.get("format") != BLOB_FORMAT:
        raise BlobError(f"format {header.get('format')!r}, expected {BLOB_FORMAT!r}")
    schema = header.get("feature_schema_version")
    if schema != expect_schema:
        raise BlobError(f"feature schema version {schema} does not match the router's {expect_schema}")
    names = tuple(header.get("feature_names", ()))
    if names != FEATURE_NAMES:
        raise BlobError(f"feature names differ from the router's schema: {names}")
    targets = tuple(header.get("target_names", ()))
    if targets != TARGET_NAMES:
        raise BlobError(f"target names differ: {targets}")
    if tuple(header.get("residual_of", ())) != RESIDUAL_OF:
        raise BlobError(f"residual targets differ: {header.get('residual_of')}")
    for name, arr in arrays.items():
        if not np.all(np.isfinite(arr)):
            raise BlobError(f"array {name!r} holds NaN or Inf")
    _check_shapes(arrays)
    if np.any(arrays["x_std"] <= 0) or np.any(arrays["y_std"] <= 0):
        raise BlobError("normalisation std must be > 0")
    version = header.get("version")
    if not isinstance(version, int) or version < 1:
        raise BlobError(f"version must be a positive integer, got {version!r}")
    metrics = {str(k): float(v) for k, v in dict(header.get("metrics", {})).items()}
    return ModelState(
        version=version,
        arrays=arrays,
        metrics=metrics,
        trained_samples=int(header.get("trained_samples", 0)),
    )


def _check_shapes(a: Mapping[str, npt.NDArray[np.float32]]) -> None:
    n_in, n_out = len(FEATURE_NAMES), len(TARGET_NAMES)
    try:
        members, fan_in, hidden = a["w0"].shape
        expect = {
            "w0": (members, n_in, hidden),
            "b0": (members, 1, hidden),
            "w1": (members, hidden, hidden),
            "b1": (members, 1, hidden),
            "w2": (members, hidden, n_out),
            "b2": (members, 1, n_out),
            "x_mean": (n_in,),
            "x_std": (n_in,),
            "y_mean": (n_out,),
            "y_std": (n_out,),
        }
    except ValueError:
        raise BlobError(f"w0 must be 3-dimensional, got shape {a['w0'].shape}") from None
    for name, shape in expect.items():
        if a[name].shape != shape:
            raise BlobError(f"array {name!r} has shape {a[name].shape}, expected {shape}")
    if fan_in != n_in or members < 1:
        raise BlobError("w0 does not match the feature count")
