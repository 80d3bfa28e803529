"""The router embedded in the gateway's process: a real dispatcher (directory, policy, decision
events) called in the loop, real emulated instances on sockets. Decisions, feedback, and the
two reasons to decide locally (no candidate, a policy that raises)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import httpx
import pytest
from gateway_helpers import MODEL, dispatcher_over, running_gateway, static_instances

from lodestar.bench.client import ClientConfig, run_sends
from lodestar.bench.results import to_records
from lodestar.bench.schedule import TimeScale, plan_sends
from lodestar.emulator.fleet import EmulatedFleet
from lodestar.policy.contracts import Decision, InstanceView, Policy, RequestView
from lodestar.workload.request import Prompt, RequestSpec
from lodestar_gateway.embedded import defer_past_the_upstream_write
from lodestar_router.service import policy_builder
from lodestar_schemas.events import Event, RouteDecision

pytestmark = pytest.mark.timeout(60)

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hello there, how are you?"}], "max_tokens": 4}


class BrokenPolicy(Policy):
    """A plugin with a bug: every decision raises."""

    name = "broken"

    def decide(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Decision:
        raise ZeroDivisionError("bug in a plugin")


def route_count(metrics_text: str, result: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith(f'lodestar_gateway_router_latency_seconds_count{{result="{result}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_requests_are_routed_by_the_embedded_dispatcher_and_feed_it_back(emulated: EmulatedFleet) -> None:
    router_events: list[Event] = []
    dispatcher = dispatcher_over(emulated, router_events)
    async with running_gateway(embedded=dispatcher, instances=static_instances(emulated)) as gw:
        async with httpx.AsyncClient(timeout=30) as client:
            for i in range(3):
                r = await client.post(gw.url + "/v1/chat/completions", json={**BODY, "stream": i % 2 == 0},
                                      headers={"x-request-id": f"emb-{i}"})  # fmt: skip
                assert r.status_code == 200, r.text
        outcomes = [await gw.outcome(f"emb-{i}") for i in range(3)]
        for _ in range(100):  # final feedback is applied on the loop's next turn
            if dispatcher.inflight == 0:
                break
            await asyncio.sleep(0.01)
        metrics = await gw.metrics()
    decisions = [e for e in router_events if isinstance(e, RouteDecision)]
    assert [d.decision_id for d in decisions] == ["emb-0", "emb-1", "emb-2"]
    assert all(o.policy == "round-robin" and not o.fallback for o in outcomes)
    assert [o.instance_id for o in outcomes] == [d.instance_id for d in decisions]
    assert len({o.instance_id for o in outcomes}) == 2  # round robin over both instances
    assert dispatcher.inflight == 0
    assert route_count(metrics, "ok") == 3
    assert gw.core.embedded is not None and gw.core.embedded.applied >= 6  # first token + final, per request


@pytest.mark.parametrize(
    ("reason", "model", "policy"),
    [("no_instance", "another-model", None), ("router_error", MODEL, BrokenPolicy())],
    ids=["no-candidate", "policy-raises"],
)
async def test_what_the_router_cannot_decide_is_decided_locally_and_counted(
    emulated: EmulatedFleet, reason: str, model: str, policy: Policy | None
) -> None:
    router_events: list[Event] = []
    dispatcher = dispatcher_over(emulated, router_events, policy=policy, model=model)
    async with running_gateway(embedded=dispatcher, instances=static_instances(emulated)) as gw:
        async with httpx.AsyncClient(timeout=30) as client:
            r = await client.post(gw.url + "/v1/chat/completions", json=BODY, headers={"x-request-id": "local-1"})
        assert r.status_code == 200, r.text
        assert r.headers["x-lodestar-decision"] == f"fallback:{reason}"
        out = await gw.outcome("local-1")
        metrics = await gw.metrics()
    assert out.fallback
    assert f'lodestar_gateway_fallbacks_total{{reason="{reason}"}} 1.0' in metrics
    assert route_count(metrics, reason) == 1
    assert router_events == [] and dispatcher.inflight == 0


@pytest.mark.parametrize(
    ("profile", "decision"),
    [("round-robin", "router"), ("lodestar", "heuristic")],  # the learned policy, no model yet
)
async def test_the_answer_names_its_instance_and_the_bench_records_it(
    emulated: EmulatedFleet, profile: str, decision: str
) -> None:
    router_events: list[Event] = []
    dispatcher = dispatcher_over(emulated, router_events, policy=policy_builder(0)(profile))
    requests = [RequestSpec(f"hdr-{i}", arrival_s=0.01 * i, prompt=Prompt(20), output_tokens=3) for i in range(4)]
    async with running_gateway(embedded=dispatcher, instances=static_instances(emulated)) as gw:
        sends = plan_sends(requests, [gw.url], TimeScale(1.0))
        results, _ = await run_sends(sends, ClientConfig())
    records = to_records(results, TimeScale(1.0))
    decided = {d.decision_id: d.instance_id for d in router_events if isinstance(d, RouteDecision)}
    assert [r.http_status for r in records] == [200] * 4
    assert [r.record.instance_id for r in records] == [res.served_by for res in results]
    assert {r.record.instance_id for r in records} == set(decided.values())
    assert {res.decision for res in results} == {decision}
    assert all(r.record.fallback == (decision == "heuristic") and not r.record.explore for r in records)


async def test_the_decision_event_is_built_after_the_upstream_write() -> None:
    """A client that writes the request body from a task created after the decision (as aiohttp
    did before Python 3.12): the embedded dispatcher's deferral lets that task run first, where
    ``call_soon`` would not."""
    loop = asyncio.get_running_loop()

    async def order_with(defer: Callable[[Callable[[], None]], object]) -> list[str]:
        order: list[str] = []
        defer(lambda: order.append("event"))

        async def write_body() -> None:
            order.append("write")

        await asyncio.create_task(write_body())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return order

    assert await order_with(loop.call_soon) == ["event", "write"]
    assert await order_with(defer_past_the_upstream_write(loop)) == ["write", "event"]
