"""Compare the engine model with published reference points (``profiles/calibration.yaml``)."""

from __future__ import annotations

import functools
import random
from importlib import resources
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict

from lodestar.engine.engine import Engine
from lodestar.engine.profiles import InstanceProfile, instance_profile
from lodestar.engine.request import EngineRequest, FinishedRequest
from lodestar.engine.steptime import StepCostModel, batch_work

TOLERANCE = 0.25


class CalibrationRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    instance: str
    metric: str
    point: str
    model_value: float
    reference: float
    error_frac: float
    within: bool
    kind: Literal["point", "bound"] = "point"


class NotCovered(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    reason: str


@functools.cache
def _refs() -> dict[str, Any]:
    text = resources.files("lodestar.engine").joinpath("profiles", "calibration.yaml").read_text()
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def closed_loop(
    profile: InstanceProfile, concurrency: int, prompt: int, output: int, n_requests: int = 200, seed: int = 0
) -> tuple[float, float]:
    """(TPOT p50, TTFT p50) in seconds of ``concurrency`` clients sending back-to-back requests
    of fixed lengths with unique prompts; the first ``concurrency`` requests are warm-up."""
    rng = random.Random(seed)
    engine = Engine(profile)
    issued = 0

    def submit(now: float) -> None:
        nonlocal issued
        hashes = [rng.getrandbits(64) for _ in range(prompt // profile.block_size)]
        engine.add(EngineRequest(f"c{issued}", prompt, hashes, output, now), now)
        issued += 1

    for _ in range(concurrency):
        submit(0.0)
    done: list[FinishedRequest] = []
    while len(done) < n_requests:
        t = engine.next_event_s()
        if t is None:
            break
        for f in engine.advance(t).finished:
            done.append(f)
            submit(t)
    steady = done[concurrency:] or done
    tpot = [f.tpot_s for f in steady if f.tpot_s is not None]
    return float(np.median(tpot)), float(np.median([f.ttft_s for f in steady]))


def _model_value(profile: InstanceProfile, metric: str, point: list[float]) -> tuple[str, float, float]:
    """(point label, model value, reference) for one reference point."""
    cost = StepCostModel(profile)
    if metric == "linear_ms":
        tokens, ref = point
        return f"{int(tokens)} tokens", cost.linear_time(tokens) * 1e3, ref
    if metric == "step_ms":
        prefill, decodes, ref = point
        entries = ([(int(prefill), 0)] if prefill else []) + [(1, 512)] * int(decodes)
        label = f"{int(prefill)} prefill + {int(decodes)} decode"
        return label, cost.step_time(*batch_work(entries)) * 1e3, ref
    if metric in ("tpot_p50_ms", "ttft_p50_ms"):
        conc, prompt, output, ref = point
        tpot, ttft = closed_loop(profile, int(conc), int(prompt), int(output))
        value = tpot if metric == "tpot_p50_ms" else ttft
        return f"concurrency {int(conc)}, {int(prompt)}/{int(output)}", value * 1e3, ref
    if metric == "num_gpu_blocks":
        (ref,) = point
        return "blocks", float(profile.num_gpu_blocks), ref
    if metric == "kv_tokens":
        (ref,) = point
        return "tokens", float(profile.kv_capacity_tokens), ref
    raise ValueError(f"unknown calibration metric {metric!r}")


def validate() -> tuple[list[CalibrationRow], list[NotCovered]]:
    """Every covered reference point and bound, with the model's value and its error."""
    refs = _refs()
    rows: list[CalibrationRow] = []
    for group in refs["covered"]:
        profile = instance_profile(group["hardware"], group["model"], tp=group.get("tp", 1))
        for point in group["points"]:
            label, value, ref = _model_value(profile, group["metric"], point)
            err = value / ref - 1.0
            rows.append(
                CalibrationRow(
                    source=group["source"],
                    instance=profile.label,
                    metric=group["metric"],
                    point=label,
                    model_value=value,
                    reference=ref,
                    error_frac=err,
                    within=abs(err) <= TOLERANCE,
                )
            )
    for bound in refs["bounds"]:
        profile = instance_profile(bound["hardware"], bound["model"])
        step = StepCostModel(profile).step_time(*batch_work([(1, 512)])) * 1e3
        floor = float(bound["floor_ms"])
        rows.append(
            CalibrationRow(
                source="decode-floor",
                instance=profile.label,
                metric="decode_step_ms >= floor",
                point="batch 1",
                model_value=step,
                reference=floor,
                error_frac=step / floor - 1.0,
                within=step >= floor,
                kind="bound",
            )
        )
    skipped = [NotCovered(**item) for item in refs["not_covered"]]
    return rows, skipped
