"""Shared fixtures: a real tansu broker for the session, unique topic namespaces per test."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lodestar.bus.admin import ensure_topics
from lodestar.bus.settings import KafkaSettings
from lodestar.localinfra.broker import broker_process, start_broker
from lodestar.localinfra.ports import free_port
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar_schemas import (
    CandidateRecord,
    DeadLetter,
    Event,
    InstanceState,
    ModelUpdate,
    RequestOutcome,
    RouteDecision,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread: the models are tiny, and tests share two cores with servers."""
    import torch

    torch.set_num_threads(1)


SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def local_infra() -> LocalInfraSettings:
    return LocalInfraSettings(home=REPO_ROOT / ".lodestar")


@pytest.fixture(scope="session")
def broker(local_infra: LocalInfraSettings) -> Iterator[str]:
    """A real tansu broker on a free port for the whole test session (same script as `make infra-up`)."""
    port = free_port()
    name = f"test-broker-{os.getpid()}"
    address = start_broker(local_infra, port=port, name=name)
    yield address
    broker_process(local_infra, port, name).stop()


@pytest.fixture
def kafka_settings(broker: str) -> KafkaSettings:
    """Client settings with a topic namespace unique to this test and short group timeouts."""
    return KafkaSettings(
        bootstrap_servers=broker,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        session_timeout_ms=2000,
        rebalance_timeout_ms=2000,
        heartbeat_interval_ms=500,
    )


@pytest.fixture
async def topics(kafka_settings: KafkaSettings) -> AsyncIterator[KafkaSettings]:
    """``kafka_settings`` after every Lodestar topic was created under its prefix."""
    await ensure_topics(kafka_settings)
    yield kafka_settings


def sample_events() -> list[Event]:
    """One valid event per topic."""
    weights = b"\x00\x01binary\xff"
    return [
        InstanceState(
            instance_id="h100-0",
            url="http://127.0.0.1:8001",
            model="llama-3-8b",
            hardware="H100-SXM",
            num_running=3,
            num_waiting=1,
            kv_usage_frac=0.42,
            prefix_hit_rate=0.5,
            healthy=True,
            scrape_latency_s=0.004,
        ),
        RouteDecision(
            decision_id="req-1",
            model="llama-3-8b",
            instance_id="h100-0",
            policy="lodestar",
            model_version=3,
            feature_schema_version=1,
            prompt_tokens=1200,
            candidates=(
                CandidateRecord(instance_id="h100-0", score=0.9, features={"queue": 1.0}),
                CandidateRecord(instance_id="a10g-0", score=0.2, features={"queue": 4.0}),
            ),
            explore=False,
            propensity=0.95,
        ),
        RequestOutcome(
            request_id="req-1",
            decision_id="req-1",
            model="llama-3-8b",
            instance_id="h100-0",
            policy="lodestar",
            stream=True,
            prompt_tokens=1200,
            completion_tokens=64,
            ttft_s=0.12,
            tpot_s=0.011,
            e2e_s=0.82,
            status="ok",
            http_status=200,
        ),
        ModelUpdate(
            version=3,
            feature_schema_version=1,
            weights_format="test/1",
            weights=weights,
            weights_sha256=hashlib.sha256(weights).hexdigest(),
            trained_samples=5000,
            metrics={"loss": 0.1},
        ),
        DeadLetter(
            source_topic="lodestar.instance-state",
            partition=0,
            offset=7,
            reason="not UTF-8 JSON",
            payload_bytes=3,
            payload_head=b"\xff\xfe\x00",
            ts=datetime(2026, 1, 1, tzinfo=UTC),
        ),
    ]


@pytest.fixture
def events() -> list[Event]:
    return sample_events()
