"""Builders shared by the router's unit tests: instance states, route requests, real models.

Models are trained for real (:class:`~lodestar.learn.trainer.OnlineTrainer` on synthetic
samples where TTFT follows the pending-work feature), so blobs are what the trainer service
publishes; only the deliberately corrupted ones are edited by hand.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

from lodestar.learn.blob import BLOB_FORMAT, ModelState, blob_sha256, encode_blob
from lodestar.learn.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION, N_FEATURES
from lodestar.learn.trainer import OnlineTrainer, TrainerConfig
from lodestar_schemas.events import InstanceState, ModelUpdate
from lodestar_schemas.router_api import RouteRequest

MODEL = "llama-3-8b"
T0_WALL = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def trained(samples: int = 300, steps: int = 40, seed: int = 0) -> OnlineTrainer:
    """A small trainer fitted to synthetic samples: log TTFT = work_ttft_log + 0.1 + noise."""
    rng = np.random.default_rng(seed)
    trainer = OnlineTrainer(TrainerConfig(members=3, hidden=16, batch=64), seed=seed)
    work, decode = FEATURE_NAMES.index("work_ttft_log"), FEATURE_NAMES.index("decode_step_log")
    for i in range(samples):
        x = rng.normal(0.0, 1.0, N_FEATURES)
        x[work], x[decode] = rng.uniform(-4.0, 0.0), -3.7
        y = np.array([x[work] + 0.1 + rng.normal(0, 0.05), x[decode] + rng.normal(0, 0.05), x[work] + 1.0])
        trainer.add(x, y, float(i))
    trainer.train(steps, float(samples))
    return trainer


def model_update(
    state: ModelState,
    *,
    blob: bytes | None = None,
    sha256: str | None = None,
    feature_schema_version: int = FEATURE_SCHEMA_VERSION,
    weights_format: str = BLOB_FORMAT,
    version: int | None = None,
) -> ModelUpdate:
    """The event the trainer would publish for ``state`` (fields overridable to corrupt it)."""
    weights = encode_blob(state) if blob is None else blob
    return ModelUpdate(
        version=state.version if version is None else version,
        feature_schema_version=feature_schema_version,
        weights_format=weights_format,
        weights=weights,
        weights_sha256=blob_sha256(weights) if sha256 is None else sha256,
        trained_samples=state.trained_samples,
        metrics=dict(state.metrics),
    )


def with_nan(state: ModelState, array: str = "w1") -> ModelState:
    """``state`` with one NaN in ``array`` (a deliberately corrupted model)."""
    arrays: dict[str, npt.NDArray[np.float32]] = {k: np.array(v, copy=True) for k, v in state.arrays.items()}
    arrays[array].flat[0] = np.nan
    return dataclasses.replace(state, arrays=arrays)


def instance_state(
    instance_id: str,
    *,
    age_s: float = 0.0,
    now_wall: datetime = T0_WALL,
    model: str = MODEL,
    healthy: bool = True,
    running: int = 0,
    waiting: int = 0,
    kv: float = 0.0,
    max_model_len: int | None = 32_768,
) -> InstanceState:
    return InstanceState(
        ts=now_wall - timedelta(seconds=age_s),
        instance_id=instance_id,
        url=f"http://{instance_id}.local:8000",
        model=model,
        num_running=running,
        num_waiting=waiting,
        kv_usage_frac=kv,
        max_model_len=max_model_len,
        healthy=healthy,
        scrape_latency_s=0.001,
    )


def route_request(request_id: str = "req-1", **overrides: object) -> RouteRequest:
    fields: dict[str, object] = {
        "request_id": request_id,
        "model": MODEL,
        "prompt_tokens": 64,
        "block_hashes": [11, 22, 33, 44],
        "expected_output_tokens": 16,
    }
    fields.update(overrides)
    return RouteRequest.model_validate(fields)


def route_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"request_id": "req-1", "model": MODEL, "prompt_tokens": 64, "block_hashes": [1, 2]}
    body.update(overrides)
    return body


def metric_value(text: str, sample: str) -> float:
    """The value of the exposition line starting with ``sample`` (name with labels)."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {sample!r} in metrics")
