"""The router as users run it: a real process (`python -m lodestar_router`) on a real broker.

The test plays the collector (instance states every 0.25 s), the trainer (model updates) and
the gateway (route and feedback over HTTP), and reads the decision topic. No assertion depends
on wall-clock speed: every wait polls an endpoint or the topic with a generous deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import numpy as np
import pytest

from lodestar.bus.consume import EventConsumer
from lodestar.bus.publish import EventPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar.learn.blob import BLOB_FORMAT, ModelState, blob_sha256, encode_blob
from lodestar.learn.features import FEATURE_NAMES, FEATURE_SCHEMA_VERSION, N_FEATURES
from lodestar.learn.trainer import OnlineTrainer, TrainerConfig
from lodestar.localinfra.ports import free_port
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar_schemas import InstanceState, ModelUpdate, RouteDecision, TopicName

pytestmark = pytest.mark.integration

MODEL = "llama-3-8b"
INSTANCES = ("gpu-a", "gpu-b", "gpu-c")
TOKEN = "integration-admin-token"
WAIT_S = 30.0


def _trained_state(version: int) -> ModelState:
    """A real (small) model: an OnlineTrainer fitted to synthetic samples."""
    rng = np.random.default_rng(0)
    trainer = OnlineTrainer(TrainerConfig(members=3, hidden=16, batch=64), seed=0)
    work, decode = FEATURE_NAMES.index("work_ttft_log"), FEATURE_NAMES.index("decode_step_log")
    for i in range(300):
        x = rng.normal(0.0, 1.0, N_FEATURES)
        x[work], x[decode] = rng.uniform(-4.0, 0.0), -3.7
        trainer.add(x, np.array([x[work] + 0.1 + rng.normal(0, 0.05), x[decode], x[work] + 1.0]), float(i))
    trainer.train(40, 300.0)
    return trainer.export(version)


def _update(state: ModelState) -> ModelUpdate:
    blob = encode_blob(state)
    return ModelUpdate(
        version=state.version,
        feature_schema_version=FEATURE_SCHEMA_VERSION,
        weights_format=BLOB_FORMAT,
        weights=blob,
        weights_sha256=blob_sha256(blob),
        trained_samples=state.trained_samples,
        metrics=dict(state.metrics),
    )


def _with_nan(state: ModelState, version: int) -> ModelState:
    arrays = {k: np.array(v, copy=True) for k, v in state.arrays.items()}
    arrays["w0"].flat[3] = np.nan
    return dataclasses.replace(state, arrays=arrays, version=version)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


async def _until(what: str, cond: Callable[[], Awaitable[bool]], detail: Callable[[], object] = lambda: "") -> None:
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                if await cond():
                    return
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}; {detail()}") from None


@dataclasses.dataclass
class Fleet:
    """Plays the collector: publishes every live instance's state every 0.25 s."""

    publisher: EventPublisher
    live: set[str] = dataclasses.field(default_factory=lambda: set(INSTANCES))

    async def run(self) -> None:
        while True:
            for k, iid in enumerate(INSTANCES):
                if iid in self.live:
                    await self.publisher.send(
                        InstanceState(
                            instance_id=iid,
                            url=f"http://127.0.0.1:{9100 + k}",
                            model=MODEL,
                            num_running=k,
                            num_waiting=0,
                            kv_usage_frac=0.1 * k,
                            max_model_len=32_768,
                            healthy=True,
                            scrape_latency_s=0.001,
                        )
                    )
            await asyncio.sleep(0.25)


@dataclasses.dataclass
class Decisions:
    """Every decision read from the decision topic so far."""

    events: dict[str, RouteDecision] = dataclasses.field(default_factory=dict)


@pytest.fixture
async def decisions(topics: KafkaSettings) -> AsyncIterator[Decisions]:
    consumer = EventConsumer(topics, [TopicName.ROUTE_DECISIONS], group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    seen = Decisions()

    async def read() -> None:
        while True:
            for received in await consumer.poll(timeout_ms=100):
                assert isinstance(received.event, RouteDecision)
                seen.events[received.event.decision_id] = received.event

    task = asyncio.create_task(read())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


@pytest.fixture
async def publisher(topics: KafkaSettings) -> AsyncIterator[EventPublisher]:
    pub = EventPublisher(topics)
    await pub.start()
    try:
        yield pub
    finally:
        await pub.stop()


@pytest.fixture
async def fleet(publisher: EventPublisher) -> AsyncIterator[Fleet]:
    fleet = Fleet(publisher)
    task = asyncio.create_task(fleet.run())
    try:
        yield fleet
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_router_routes_learns_reloads_and_switches(
    topics: KafkaSettings,
    local_infra: LocalInfraSettings,
    publisher: EventPublisher,
    fleet: Fleet,
    decisions: Decisions,
) -> None:
    good = await asyncio.to_thread(_trained_state, 1)
    port, admin_port = free_port(), free_port()
    env = {
        "LODESTAR_KAFKA_BOOTSTRAP_SERVERS": topics.bootstrap_servers,
        "LODESTAR_KAFKA_TOPIC_PREFIX": topics.topic_prefix,
        "LODESTAR_ROUTER_ADMIN_TOKEN": TOKEN,
    }
    argv = [sys.executable, "-m", "lodestar_router", "--port", str(port), "--admin-port", str(admin_port)]
    router = ManagedProcess(
        name=f"test-router-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        argv=argv,
        run_dir=local_infra.run_dir,
        log_dir=local_infra.log_dir,
        env=env,
    )
    api = f"http://127.0.0.1:{port}"
    router.start(ready=lambda: _ok(f"{api}/health"), timeout_s=60.0)
    try:
        async with (
            httpx.AsyncClient(base_url=api, timeout=5.0) as client,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{admin_port}", timeout=5.0) as admin,
        ):
            await _scenario(client, admin, publisher, fleet, decisions, good)
    finally:
        router.stop()
    log = router.log_tail(50_000)
    assert "router_stopped" in log, log  # SIGTERM: feeds and APIs stopped, publisher flushed
    assert "Traceback" not in log, log
    assert "model_update_rejected" in log  # the corrupted model was reported loudly


async def _get(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    r = await client.get(path)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def _route(client: httpx.AsyncClient, rid: str, **extra: object) -> dict[str, Any]:
    body = {"request_id": rid, "model": MODEL, "prompt_tokens": 640, "block_hashes": list(range(40)), **extra}
    r = await client.post("/v1/route", json=body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


async def _finish(client: httpx.AsyncClient, answer: dict[str, Any], ttft_s: float | None = 0.05) -> None:
    """First token and end of a routed request. Once the model decides, the test reports no
    TTFT: its made-up latencies would look like drift to the model and send it to fallback."""
    did, iid = answer["decision_id"], answer["instance_id"]
    events = [
        {"decision_id": did, "instance_id": iid, "kind": "first_token", "ttft_s": ttft_s},
        {"decision_id": did, "instance_id": iid, "kind": "finished", "ttft_s": ttft_s, "tpot_s": 0.01, "e2e_s": 0.4,
         "prompt_tokens": 640, "completion_tokens": 35},
    ]  # fmt: skip
    r = await client.post("/v1/feedback", json={"events": events})
    assert r.json() == {"applied": 2, "unknown": 0, "mismatched": 0}


async def _scenario(
    client: httpx.AsyncClient,
    admin: httpx.AsyncClient,
    publisher: EventPublisher,
    fleet: Fleet,
    decisions: Decisions,
    good: ModelState,
) -> None:
    # 1. The router learns the fleet from the instance-state topic.
    async def fleet_known() -> bool:
        return (await _get(client, "/health"))["healthy_instances"] == len(INSTANCES)

    await _until("the fleet", fleet_known, lambda: httpx.get(f"{client.base_url}health").text)

    # 2. Routing before any model: the heuristic decides; decisions reach the topic with features.
    answers = [await _route(client, f"cold-{i}") for i in range(6)]
    assert {a["instance_id"] for a in answers} <= set(INSTANCES)
    assert all(a["fallback"] and a["policy"] == "lodestar" and a["model_version"] is None for a in answers)
    assert all(a["url"] == f"http://127.0.0.1:{9100 + INSTANCES.index(a['instance_id'])}" for a in answers)
    for a in answers:
        await _finish(client, a)

    async def cold_published() -> bool:
        return all(f"cold-{i}" in decisions.events for i in range(6))

    await _until("the cold decisions on the topic", cold_published, lambda: sorted(decisions.events))
    event = decisions.events["cold-0"]
    assert event.fallback and event.model_version is None and event.feature_schema_version == FEATURE_SCHEMA_VERSION
    assert sorted(c.instance_id for c in event.candidates) == sorted(INSTANCES)
    assert all(set(FEATURE_NAMES) <= set(c.features) for c in event.candidates)
    assert 0.0 < event.propensity <= 1.0 and event.prompt_tokens == 640

    # 3. A published model is hot-loaded and used.
    await publisher.send(_update(good))

    async def model_active() -> bool:
        return (await _get(client, "/v1/model"))["active_version"] == 1

    await _until("model version 1", model_active, lambda: httpx.get(f"{client.base_url}v1/model").text)
    warm = await _route(client, "warm-0")
    assert (warm["model_version"], warm["fallback"]) == (1, False)
    await _finish(client, warm, ttft_s=None)

    # 4. A corrupted model (NaN weights) is rejected; version 1 stays and routing goes on.
    await publisher.send(_update(_with_nan(good, version=2)))

    async def rejected() -> bool:
        return (await _get(client, "/v1/model"))["rejected"] == 1

    await _until("the rejection", rejected, lambda: httpx.get(f"{client.base_url}v1/model").text)
    info = await _get(client, "/v1/model")
    assert (info["active_version"], info["latest_version"]) == (1, 1)
    assert info["last_rejection"]["version"] == 2 and info["last_rejection"]["reason"] == "invalid_blob"
    after = await _route(client, "after-reject")
    assert after["model_version"] == 1
    await _finish(client, after, ttft_s=None)
    metrics = (await client.get("/metrics")).text
    assert "lodestar_router_model_version 1.0" in metrics
    assert 'lodestar_router_models_rejected_total{reason="invalid_blob"} 1.0' in metrics

    async def warm_published() -> bool:
        return "warm-0" in decisions.events

    await _until("the model's decision on the topic", warm_published)
    warm_event = decisions.events["warm-0"]
    assert warm_event.model_version == 1 and not warm_event.fallback
    assert all("pred.log_ttft_s" in c.features for c in warm_event.candidates)

    # 5. Admin: the token is required; a switch takes effect at once; back to lodestar keeps the model.
    r = await admin.post("/admin/policy", json={"profile": "round-robin"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "AuthenticationError"
    r = await admin.post("/admin/policy", json={"profile": "round-robin"}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = await admin.post("/admin/policy", json={"profile": "round-robin"}, headers=auth)
    assert r.status_code == 200 and r.json()["policy"] == "round-robin"
    rr = [await _route(client, f"rr-{i}") for i in range(3)]
    assert {a["policy"] for a in rr} == {"round-robin"} and {a["instance_id"] for a in rr} == set(INSTANCES)
    for a in rr:
        await _finish(client, a, ttft_s=None)
    r = await admin.post("/admin/policy", json={"profile": "nope"}, headers=auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "profile"
    r = await admin.post("/admin/policy", json={"profile": "lodestar"}, headers=auth)
    assert r.json() == {"policy": "lodestar", "profile": "lodestar", "learned": True, "model_version": 1}

    # 6. An instance whose states stop goes stale and is no longer chosen.
    fleet.live.discard("gpu-a")

    async def a_stale() -> bool:
        state = await admin.get("/admin/state", headers=auth)
        return any(i["instance_id"] == "gpu-a" and not i["healthy"] for i in state.json()["instances"])

    await _until("gpu-a to go stale", a_stale)
    later = [await _route(client, f"late-{i}") for i in range(6)]
    assert "gpu-a" not in {a["instance_id"] for a in later}
    assert (await _get(client, "/health"))["inflight"] == len(later)
