"""Model blobs: round trip, and every reason the router refuses one."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from lodestar.learn.blob import BlobError, ModelState, decode_blob, encode_blob
from lodestar.learn.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from lodestar.learn.trainer import OnlineTrainer


@pytest.fixture(scope="module")
def state() -> ModelState:
    rng = np.random.default_rng(0)
    trainer = OnlineTrainer(seed=0)
    for i in range(300):
        x = rng.normal(size=len(FEATURE_NAMES))
        trainer.add(x, np.array([x[0], x[1], x[2]]), float(i))
    trainer.train(5, 300.0)
    return trainer.export(version=3)


def _rewrite(blob: bytes, **changes: object) -> bytes:
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(bytes(arrays.pop("header")).decode())
    for key, value in changes.items():
        if key in header:
            header[key] = value
        else:
            arrays[key] = value  # type: ignore[assignment]
    buf = io.BytesIO()
    np.savez(buf, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
    return buf.getvalue()


def test_round_trip(state: ModelState) -> None:
    back = decode_blob(encode_blob(state))
    assert back.version == 3 and back.members == state.members
    assert back.metrics == pytest.approx(dict(state.metrics))
    for k, v in state.arrays.items():
        np.testing.assert_array_equal(back.arrays[k], v)


@pytest.mark.parametrize(
    ("case", "changes", "message"),
    [
        ("wrong format", {"format": "other/1"}, "format"),
        ("other feature schema", {"feature_schema_version": FEATURE_SCHEMA_VERSION + 1}, "feature schema version"),
        ("renamed features", {"feature_names": ["a"] * len(FEATURE_NAMES)}, "feature names"),
        ("no version", {"version": 0}, "version"),
        ("NaN weights", {"w1": np.full((5, 64, 64), np.nan, dtype=np.float32)}, "NaN or Inf"),
        ("Inf bias", {"b2": np.full((5, 1, 3), np.inf, dtype=np.float32)}, "NaN or Inf"),
        ("wrong shape", {"w2": np.zeros((5, 64, 2), dtype=np.float32)}, "shape"),
        ("zero std", {"x_std": np.zeros(len(FEATURE_NAMES), dtype=np.float32)}, "std"),
    ],
)
def test_bad_blobs_are_refused(state: ModelState, case: str, changes: dict[str, object], message: str) -> None:
    with pytest.raises(BlobError, match=message):
        decode_blob(_rewrite(encode_blob(state), **changes))


@pytest.mark.parametrize("data", [b"", b"not a zip", b"PK\x03\x04garbage", b"x" * (9 * 1024 * 1024)])
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(BlobError):
        decode_blob(data)
