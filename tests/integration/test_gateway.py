"""The gateway as users run it, with every real part as its own process: the broker (session
fixture), an emulated fleet (`lodestar emulate --cluster mini-hetero2`), the collector (so
instance states flow on the topic), the router and the gateway. Traffic comes from the
official `openai` client (and httpx for error cases); the test reads the outcome topic.

The router uses the `round-robin` profile so that, while an instance is gone, every other
request is routed to it (deterministic retries); the collector's failure threshold is high so
the gone instance still looks healthy to the router. No assertion depends on wall-clock
speed: every wait polls with a generous deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from lodestar.bus.consume import EventConsumer
from lodestar.bus.settings import KafkaSettings
from lodestar.localinfra.ports import free_port, free_port_block
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings
from lodestar_schemas import RequestOutcome, TopicName
from lodestar_schemas.codec import encode_event

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MODEL = "llama-3-8b"
H100, A10G = "h100-sxm-0", "a10g-0"
WAIT_S = 30.0
SECRET = "zanzibarquokka"  # in every prompt: must never reach a topic


def _lodestar() -> list[str]:
    exe = Path(sys.executable).with_name("lodestar")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from lodestar.cli.app import main; main()"]


def _get(url: str) -> dict[str, Any] | None:
    try:
        r = httpx.get(url, timeout=1.0)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def _process(infra: LocalInfraSettings, kind: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
    return ManagedProcess(
        name=f"test-gw-{kind}-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        argv=argv,
        run_dir=infra.run_dir,
        log_dir=infra.log_dir,
        env=env,
    )


@dataclass
class System:
    gateway: str
    router: str
    control: str
    urls: dict[str, str]
    router_proc: ManagedProcess
    gateway_proc: ManagedProcess


@contextlib.contextmanager
def _system(infra: LocalInfraSettings, kafka: KafkaSettings) -> Iterator[System]:
    base, control = free_port_block(2), free_port()
    urls = {H100: f"http://127.0.0.1:{base}", A10G: f"http://127.0.0.1:{base + 1}"}
    env = {
        "LODESTAR_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LODESTAR_KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
    }
    procs: list[ManagedProcess] = []
    try:
        fleet = _process(infra, "fleet", [*_lodestar(), "emulate", "--cluster", "mini-hetero2", "--base-port",
                                           str(base), "--admin-port", str(control)], env)  # fmt: skip
        procs.append(fleet)
        fleet.start(ready=lambda: all(_get(f"{u}/v1/models") for u in urls.values()), timeout_s=60.0)
        instances = ",".join(f"{iid}={url}" for iid, url in urls.items())
        collector_port = free_port()
        collector = _process(infra, "collector", [*_lodestar(), "collector", "--port", str(collector_port),
                             "--interval", "0.25", "--failure-threshold", "1000"],
                             {**env, "LODESTAR_COLLECTOR_INSTANCES": instances})  # fmt: skip
        procs.append(collector)
        collector.start(ready=lambda: _get(f"http://127.0.0.1:{collector_port}/health") is not None, timeout_s=60.0)
        router_port, gateway_port = free_port(), free_port()
        router = f"http://127.0.0.1:{router_port}"
        router_proc = _process(infra, "router", [*_lodestar(), "router", "--port", str(router_port), "--profile",
                               "round-robin"], env)  # fmt: skip
        procs.append(router_proc)
        router_proc.start(ready=lambda: (_get(f"{router}/health") or {}).get("healthy_instances") == 2, timeout_s=60.0)
        gateway = f"http://127.0.0.1:{gateway_port}"
        gw_env = {**env, "LODESTAR_GATEWAY_ROUTER_URL": router, "LODESTAR_GATEWAY_ROUTE_TIMEOUT_S": "0.5"}
        gateway_proc = _process(infra, "gateway", [*_lodestar(), "gateway", "--port", str(gateway_port)], gw_env)
        procs.append(gateway_proc)
        gateway_proc.start(
            ready=lambda: (_get(f"{gateway}/health") or {}).get("healthy_instances") == 2, timeout_s=60.0
        )
        yield System(gateway, router, f"http://127.0.0.1:{control}", urls, router_proc, gateway_proc)
    finally:
        for proc in reversed(procs):
            proc.stop()


@dataclass
class Outcomes:
    events: list[RequestOutcome] = field(default_factory=list)

    def of(self, request_id: str) -> list[RequestOutcome]:
        return [e for e in self.events if e.request_id == request_id]

    async def one(self, request_id: str) -> RequestOutcome:
        await self.until(f"the outcome of {request_id}", lambda: bool(self.of(request_id)))
        found = self.of(request_id)
        assert len(found) == 1, found
        return found[0]

    async def until(self, what: str, cond: Callable[[], bool]) -> None:
        try:
            async with asyncio.timeout(WAIT_S):
                while True:
                    if cond():
                        return
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}; {len(self.events)} outcomes seen") from None


@pytest.fixture
async def outcomes(topics: KafkaSettings) -> AsyncIterator[Outcomes]:
    consumer = EventConsumer(topics, [TopicName.REQUEST_OUTCOMES], group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    seen = Outcomes()

    async def read() -> None:
        while True:
            for received in await consumer.poll(timeout_ms=100):
                assert isinstance(received.event, RequestOutcome)
                seen.events.append(received.event)

    task = asyncio.create_task(read())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{SECRET} question {i}: how far is the moon?"}]


async def _openai_traffic(client: openai.AsyncOpenAI, tag: str) -> list[str]:
    """Chat and completions, streamed and not; returns the request ids."""
    ids: list[str] = []
    raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=_messages(1), max_tokens=4)  # type: ignore[arg-type]
    chat = raw.parse()
    assert chat.choices[0].message.content and chat.usage is not None and chat.usage.completion_tokens == 4
    ids.append(raw.headers["x-request-id"])

    rid = f"{tag}-chat-stream"
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=_messages(2),
        max_tokens=5,
        stream=True,
        extra_headers={"X-Request-Id": rid},  # type: ignore[arg-type]
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert all(c.usage is None for c in chunks)  # not asked for: stripped
    ids.append(rid)

    rid = f"{tag}-completion"
    done = await client.completions.create(
        model=MODEL, prompt=f"{SECRET} once upon a time", max_tokens=3, extra_headers={"X-Request-Id": rid}
    )
    assert done.choices[0].text and done.usage is not None and done.usage.completion_tokens == 3
    ids.append(rid)

    rid = f"{tag}-completion-stream"
    cstream = await client.completions.create(
        model=MODEL, prompt=f"{SECRET} in a land far away", max_tokens=3, stream=True,
        stream_options={"include_usage": True}, extra_headers={"X-Request-Id": rid},
    )  # fmt: skip
    cchunks = [c async for c in cstream]
    assert cchunks[-1].usage is not None and cchunks[-1].usage.completion_tokens == 3
    ids.append(rid)
    return ids


async def test_gateway_end_to_end(local_infra: LocalInfraSettings, topics: KafkaSettings, outcomes: Outcomes) -> None:
    with _system(local_infra, topics) as system:
        try:
            await _scenario(system, outcomes)
        finally:
            system.gateway_proc.stop()  # SIGTERM: flush, then check the log
            log = system.gateway_proc.log_tail(200_000)
        assert "gateway_stopped" in log, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        assert SECRET not in log


async def _scenario(system: System, outcomes: Outcomes) -> None:
    client = openai.AsyncOpenAI(base_url=f"{system.gateway}/v1", api_key="unused", max_retries=0, timeout=60.0)
    http = httpx.AsyncClient(timeout=60.0)
    try:
        # 1. The fleet's models, and OpenAI traffic routed by the router.
        models = await client.models.list()
        assert [m.id for m in models.data] == [MODEL]
        ids = await _openai_traffic(client, "routed")
        for rid in ids:
            out = await outcomes.one(rid)
            assert (out.status, out.http_status, out.fallback, out.policy) == ("ok", 200, False, "round-robin")
            assert out.decision_id == rid and out.instance_id in (H100, A10G) and out.completion_tokens > 0
        streamed = await outcomes.one("routed-chat-stream")
        assert streamed.ttft_s is not None and streamed.tpot_s is not None and streamed.completion_tokens == 5
        assert {(await outcomes.one(r)).instance_id for r in ids} == {H100, A10G}  # round-robin used both

        # 2. Unknown model: 404 in OpenAI's shape.
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(model="gpt-9", messages=_messages(3))  # type: ignore[arg-type]
        assert info.value.status_code == 404 and "gpt-9" in str(info.value)

        # 3. An upstream 4xx is passed through: the prompt fits the H100's context as the router
        #    sees it (no max_tokens), but not with vLLM's default of 16 completion tokens.
        limit = max(int(m["max_model_len"]) for m in (await http.get(f"{system.gateway}/v1/models")).json()["data"])
        body = {"model": MODEL, "prompt": [i % 50_000 for i in range(limit - 5)]}
        direct = await http.post(f"{system.urls[H100]}/v1/completions", json=body)
        r = await http.post(f"{system.gateway}/v1/completions", json=body, headers={"x-request-id": "too-long"})
        assert (r.status_code, r.content) == (400, direct.content)
        assert (await outcomes.one("too-long")).error_class == "upstream_400"

        # 4. An instance goes away: requests routed to it are retried on the other one.
        gone = await http.post(f"{system.control}/admin/instances/{A10G}/fault", json={"kind": "go_away"})
        assert gone.status_code == 200 and gone.json()["gone"]
        retried = []
        for i in range(4):
            rid = f"retry-{i}"
            answer = await client.chat.completions.create(
                model=MODEL,
                messages=_messages(10 + i),
                max_tokens=2,
                extra_headers={"X-Request-Id": rid},  # type: ignore[arg-type]
            )
            assert answer.choices[0].message.content
            out = await outcomes.one(rid)
            assert (out.status, out.instance_id) == ("ok", H100)
            retried.append(out.attempts)
        assert 2 in retried, retried  # round-robin sent some to the gone instance first
        back = await http.delete(f"{system.control}/admin/instances/{A10G}/fault")
        assert back.status_code == 200 and not back.json()["gone"]

        # 5. Streams that break midway end with a well-formed SSE error event, then [DONE].
        for iid in (H100, A10G):
            dropped = await http.post(
                f"{system.control}/admin/instances/{iid}/fault", json={"kind": "drop", "fraction": 1}
            )
            assert dropped.status_code == 200
        body = {"model": MODEL, "messages": _messages(20), "max_tokens": 40, "stream": True}
        async with http.stream("POST", f"{system.gateway}/v1/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            raw = (await resp.aread()).decode()
            rid = resp.headers["x-request-id"]
        events = raw.split("\n\n")
        assert events[-1] == "" and events[-2] == "data: [DONE]"
        error = json.loads(events[-3].removeprefix("data: "))["error"]
        assert error["code"] == 502 and error["type"] == "BadGatewayError"
        assert all(json.loads(e.removeprefix("data: ")) for e in events[:-2])  # every event is JSON
        assert (await outcomes.one(rid)).error_class == "upstream_disconnected"
        for iid in (H100, A10G):
            await http.delete(f"{system.control}/admin/instances/{iid}/fault")

        # 6. The router stops: every request is still served, by the local fallback, counted.
        system.router_proc.stop()
        fallback_ids = await _openai_traffic(client, "fallback")
        for rid in fallback_ids:
            out = await outcomes.one(rid)
            assert (out.status, out.fallback, out.policy) == ("ok", True, "least-request")
        metrics = (await http.get(f"{system.gateway}/metrics")).text
        counted = sum(
            float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
            if line.startswith("lodestar_gateway_fallbacks_total{")
        )  # fmt: skip
        assert counted >= len(fallback_ids)
        assert "lodestar_gateway_events_dropped_total 0.0" in metrics

        # 7. One outcome per request, and no text on the topic.
        every = [*ids, "too-long", *(f"retry-{i}" for i in range(4)), *fallback_ids]
        for rid in every:
            assert len(outcomes.of(rid)) == 1, rid
        assert all(SECRET.encode() not in encode_event(e) for e in outcomes.events)
    finally:
        await http.aclose()
        await client.close()
