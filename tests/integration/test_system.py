"""The live system end to end (issue 7): broker, emulated fleet, collector, router, trainer and
gateway as real processes, started the way `lodestar up` starts them; traffic through the
gateway with the official `openai` client. Checks that outcomes and decisions reach their
topics (without prompt text), that the trainer publishes model versions, that the router's
active version increases, and that after warm-up decisions are made by the learned model.
Twice: the router as its own process, and embedded in the gateway's (`--embedded-router`)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest
from fault_helpers import read_topic, until

from lodestar.bus.consume import EventConsumer
from lodestar.bus.settings import KafkaSettings
from lodestar.cluster.spec import load_cluster
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar.localinfra.stack import Stack, StackConfig
from lodestar.localinfra.stack_ports import StackPorts
from lodestar.workload.arrivals import PoissonArrivals
from lodestar.workload.generator import RequestGenerator
from lodestar.workload.lengths import UniformLengths
from lodestar_schemas.events import ModelUpdate, RequestOutcome, RouteDecision
from lodestar_schemas.topics import TopicName

pytestmark = pytest.mark.integration

N = 120


# The router as its own process is slow-marked: test_faults runs that layout through router
# loss, model resumption and ejection, and test_router the router's API on its own; the
# default suite cannot spare a second whole stack for the same path.
@pytest.fixture(
    scope="module",
    params=[pytest.param(False, id="router-process", marks=pytest.mark.slow), pytest.param(True, id="router-embedded")],
)
def stack(local_infra: LocalInfraSettings, request: pytest.FixtureRequest) -> Iterator[Stack]:
    ports = StackPorts.free(2)
    config = StackConfig(
        cluster=load_cluster("mini-hetero2"),
        ports=ports,
        name=f"e2e-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        topic_prefix="e2e.",
        history=False,
        publish_interval_s=1.0,
        embedded_router=request.param,
        extra_env={
            "LODESTAR_KAFKA_SESSION_TIMEOUT_MS": "3000",
            "LODESTAR_KAFKA_REBALANCE_TIMEOUT_MS": "3000",
            "LODESTAR_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
        },
    )
    s = Stack(config, local_infra)
    s.start()
    try:
        yield s
    finally:
        s.stop()


async def _send_traffic(base_url: str, n: int, seed: int) -> list[str]:
    """Streaming (and a few non-stream) chat requests at ~8 req/s; returns the prompt texts."""
    gen = RequestGenerator(UniformLengths("u", 100, 2500, 8, 24), seed=seed)
    requests = gen.generate(PoissonArrivals(rate_rps=8.0, seed=seed).times(2 * n / 8.0))[:n]
    assert len(requests) == n
    client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="not-needed", max_retries=0, timeout=120)
    texts: list[str] = []
    start = time.monotonic()

    async def one(k: int, req_text: str, max_tokens: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - (time.monotonic() - start)))
        messages = [{"role": "user", "content": req_text}]
        if k % 10 == 9:
            r = await client.chat.completions.create(model="llama-3-8b", messages=messages, max_tokens=max_tokens)  # type: ignore[arg-type]
            assert r.usage is not None and r.usage.completion_tokens == max_tokens
            return
        stream = await client.chat.completions.create(
            model="llama-3-8b",
            messages=messages,
            max_tokens=max_tokens,
            stream=True,  # type: ignore[arg-type]
        )
        chunks = [c async for c in stream]
        assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) == max_tokens

    tasks = []
    for k, r in enumerate(requests):
        text = r.prompt.text()
        texts.append(text)
        tasks.append(asyncio.create_task(one(k, text, r.output_tokens, r.arrival_s)))
    await asyncio.gather(*tasks)
    await client.close()
    return texts


async def _read(settings: KafkaSettings, topic: TopicName, want: int, timeout_s: float) -> list[object]:
    reader = EventConsumer(settings, [topic], group_id=None)
    await reader.start()
    out: list[object] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < want and time.monotonic() < deadline:
            out.extend(r.event for r in await reader.poll(timeout_ms=300))
    finally:
        await reader.stop()
    return out


def _sample(metrics_text: str, series: str) -> float:
    """The value of one series of a Prometheus text page (0 when absent)."""
    for line in metrics_text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _active_version(stack: Stack) -> int | None:
    body = httpx.get(f"{stack.router_url}/v1/model", timeout=5).json()
    version: int | None = body["active_version"]
    return version


async def test_traffic_flows_and_the_learned_model_takes_over(stack: Stack) -> None:
    kafka = KafkaSettings(bootstrap_servers=f"127.0.0.1:{stack.config.ports.broker}", topic_prefix="e2e.")
    gateway = stack.component("gateway").url
    assert gateway is not None
    async with httpx.AsyncClient(timeout=5) as client:
        health = (await client.get(f"{gateway}/health")).json()
    assert health["router"] == ("embedded" if stack.config.embedded_router else "ok")
    assert [c.name for c in stack.components].count("router") == (0 if stack.config.embedded_router else 1)
    texts = await _send_traffic(gateway, N, seed=1)
    # Both the gateway's fallback view and the router follow the instance states (embedded:
    # through the router's one consumer).
    async with httpx.AsyncClient(timeout=5) as client:
        gateway_metrics = (await client.get(f"{gateway}/metrics")).text
        router_metrics = (await client.get(f"{stack.router_url}/metrics")).text
    assert _sample(gateway_metrics, "lodestar_gateway_instance_states_total") > 0
    assert _sample(router_metrics, 'lodestar_router_instance_states_total{outcome="applied"}') > 0

    outcomes = await _read(kafka, TopicName.REQUEST_OUTCOMES, N, 60)
    decisions = await _read(kafka, TopicName.ROUTE_DECISIONS, N, 30)
    done = [o for o in outcomes if isinstance(o, RequestOutcome)]
    assert len({o.request_id for o in done}) == N
    assert all(o.status == "ok" for o in done)
    # The router decided every request the gateway did not route locally (it falls back when
    # the router misses its 50 ms budget, which a loaded 2-core machine can make happen).
    routed = {o.decision_id for o in done if not o.fallback}
    decided = {d.decision_id for d in decisions if isinstance(d, RouteDecision)}
    assert routed and routed <= decided
    raw = "".join(o.model_dump_json() for o in outcomes if isinstance(o, RequestOutcome))
    word = texts[0].split()[3]
    assert word not in raw, "prompt text leaked into an outcome event"

    # The trainer publishes, the router picks the models up, and the model decides.
    deadline = time.monotonic() + 120
    first_version = None
    while time.monotonic() < deadline and first_version is None:
        first_version = _active_version(stack)
        if first_version is None:
            await _send_traffic(gateway, 24, seed=int(time.monotonic()))
    assert first_version is not None, stack.router_host().process.log_tail()
    await _send_traffic(gateway, 40, seed=7)
    base: int = first_version
    await read_topic(  # the trainer published past the first model it got out …
        kafka,
        TopicName.MODEL_UPDATES,
        lambda evs: any(isinstance(m, ModelUpdate) and m.version > base for m in evs),
        timeout_s=60,
    )
    await until(  # … and the router loaded a newer one
        "the router to load a newer model", lambda: (v := _active_version(stack)) is not None and v > base, 60
    )
    decisions = await read_topic(kafka, TopicName.ROUTE_DECISIONS, lambda evs: len(evs) >= N, timeout_s=30)
    learned = [d for d in decisions if isinstance(d, RouteDecision) and not d.fallback and d.model_version]
    assert learned, "no decision was made by the learned model"
    assert all(d.propensity > 0 and d.candidates for d in learned)
