"""`lodestar replay` on a window recorded on the real broker: the recorded requests come back
with their spacing and prefix structure, re-run in the simulator under several policies, and
off-policy estimates of the logging policy reproduce what was observed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import typer
from sim_events import T0, simulated_events

from lodestar.bus.model_topic import put_model_update
from lodestar.bus.publish import EventPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar.cli.replay_cmd import _model as replay_model
from lodestar.learn.blob import BLOB_FORMAT, blob_sha256, encode_blob
from lodestar.learn.features import FEATURE_SCHEMA_VERSION, N_FEATURES
from lodestar.learn.trainer import OnlineTrainer, TrainerConfig
from lodestar.replay.logged import from_kafka
from lodestar_schemas.events import Event, ModelUpdate, RequestOutcome, RouteDecision

pytestmark = pytest.mark.integration

N = 300


async def _publish(settings: KafkaSettings, events: list[Event]) -> None:
    pub = EventPublisher(settings)
    await pub.start()
    try:
        futures = [await pub.send_nowait(e) for e in events]
        await asyncio.gather(*futures)
    finally:
        await pub.stop()


@pytest.fixture
async def recorded(topics: KafkaSettings) -> tuple[KafkaSettings, list[Event]]:
    events = simulated_events(N, profile="least-request", rate_rps=6.0)
    await _publish(topics, events)
    return topics, events


def _cli(settings: KafkaSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LODESTAR_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "LODESTAR_KAFKA_TOPIC_PREFIX": settings.topic_prefix,
    }
    return subprocess.run(
        [sys.executable, "-m", "lodestar", "replay", *args], env=env, capture_output=True, text=True, timeout=300
    )


async def test_the_recorded_window_comes_back_from_the_topics(recorded: tuple[KafkaSettings, list[Event]]) -> None:
    settings, events = recorded
    window = await asyncio.to_thread(from_kafka, settings, T0 - timedelta(seconds=1), T0 + timedelta(hours=1))
    decisions = [e for e in events if isinstance(e, RouteDecision)]
    outcomes = {e.decision_id: e for e in events if isinstance(e, RequestOutcome)}
    assert len(window.decisions) == len(decisions) == N
    requests = window.requests()
    assert len(requests) == N
    by_id = {d.decision_id: d for d in decisions}
    for r in requests:
        d = by_id[r.request_id]
        assert r.arrival_s == pytest.approx((d.ts - decisions[0].ts).total_seconds(), abs=1e-3)
        assert r.prompt.n_tokens == d.prompt_tokens
        assert r.output_tokens == outcomes[r.request_id].completion_tokens
        assert r.prompt.segments == d.prefix_segments


def test_replay_cli_resimulates_and_estimates(recorded: tuple[KafkaSettings, list[Event]], tmp_path: Path) -> None:
    settings, _ = recorded
    window = [
        "--kafka",
        "--from",
        (T0 - timedelta(seconds=1)).isoformat(),
        "--to",
        (T0 + timedelta(hours=1)).isoformat(),
    ]
    out = tmp_path / "sim.json"
    sim = _cli(
        settings, "sim", *window, "--cluster", "mini-hetero2", "-p", "round-robin,least-request", "--json", str(out)
    )
    assert sim.returncode == 0, sim.stderr
    data = json.loads(out.read_text())
    assert {r["policy"] for r in data["runs"]} == {"round-robin", "least-request"}
    assert all(r["summary"]["n_requests"] == N for r in data["runs"])
    est = tmp_path / "ope.json"
    ope = _cli(settings, "ope", *window, "-t", "logged", "-t", "min:inflight_requests_log", "--json", str(est))
    assert ope.returncode == 0, ope.stderr
    rows = {e["policy"]: e for e in json.loads(est.read_text())}
    assert rows["logged"]["snips_s"] == pytest.approx(rows["logged"]["observed_mean_s"])
    bad = _cli(settings, "ope", *window, "-t", "bogus")
    assert bad.returncode != 0 and "--target" in bad.stderr


async def test_model_latest_is_the_newest_on_the_model_topic(
    topics: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--target model:latest`` / ``--reward-model latest``: the highest version on the topic;
    a clear error when there is none."""
    monkeypatch.setenv("LODESTAR_KAFKA_BOOTSTRAP_SERVERS", topics.bootstrap_servers)
    monkeypatch.setenv("LODESTAR_KAFKA_TOPIC_PREFIX", topics.topic_prefix)
    with pytest.raises(typer.BadParameter, match="no model on the model topic"):
        await asyncio.to_thread(replay_model, "latest")
    rng = np.random.default_rng(0)
    trainer = OnlineTrainer(TrainerConfig(members=2, hidden=8, batch=16), seed=0)
    for i in range(64):
        trainer.add(rng.normal(0.0, 1.0, N_FEATURES), rng.normal(-3.0, 0.1, 3), float(i))
    trainer.train(5, 64.0)
    for version in (2, 7, 4):
        blob = encode_blob(trainer.export(version))
        await put_model_update(
            topics,
            ModelUpdate(
                version=version, feature_schema_version=FEATURE_SCHEMA_VERSION, weights_format=BLOB_FORMAT,
                weights=blob, weights_sha256=blob_sha256(blob), trained_samples=64,
            ),
        )  # fmt: skip
    state = await asyncio.to_thread(replay_model, "latest")
    assert state.version == 7
