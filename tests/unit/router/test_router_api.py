"""The public HTTP API in-process (ASGI): route, feedback, model, health, metrics, and the
OpenAI error shape of every failure."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest
from router_helpers import MODEL, metric_value, model_update, route_body

from lodestar.bus.settings import KafkaSettings
from lodestar.learn.blob import ModelState
from lodestar.policy.contracts import Decision, InstanceView, Policy, RequestView
from lodestar_router.api import build_app
from lodestar_router.service import RouterService
from lodestar_router.settings import RouterSettings, StaticInstance
from lodestar_schemas.router_api import MAX_BLOCKS

STATIC = [StaticInstance(instance_id=i, url=f"http://{i}:8000", model=MODEL) for i in ("a", "b")]


def _service(profile: str = "round-robin") -> RouterService:
    settings = RouterSettings(instances=STATIC, profile=profile, json_logs=False)
    return RouterService.build(settings, KafkaSettings(bootstrap_servers="127.0.0.1:1"))


@pytest.fixture
def service() -> RouterService:
    return _service()


@pytest.fixture
async def client(service: RouterService) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(service.dispatcher, service.metrics, service.health)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router") as c:
        yield c


def _assert_error(response: httpx.Response, status: int, kind: str, param: str | None) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert (body["error"]["type"], body["error"]["param"], body["error"]["code"]) == (kind, param, status)
    message: str = body["error"]["message"]
    assert message
    return message


async def test_route_then_feedback(client: httpx.AsyncClient, service: RouterService) -> None:
    r = await client.post("/v1/route", json=route_body(request_id="r1"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    answer = r.json()
    assert answer == {
        "decision_id": "r1",
        "instance_id": answer["instance_id"],
        "url": f"http://{answer['instance_id']}:8000",
        "policy": "round-robin",
        "model_version": None,
        "fallback": False,
        "explore": False,
    }
    assert service.publisher.pending == 1  # the decision event waits for the broker
    events = [
        {"decision_id": "r1", "instance_id": answer["instance_id"], "kind": "first_token", "ttft_s": 0.1},
        {"decision_id": "r1", "instance_id": answer["instance_id"], "kind": "finished", "e2e_s": 0.5},
        {"decision_id": "gone", "instance_id": "a", "kind": "finished"},
    ]
    ack = await client.post("/v1/feedback", json={"events": events})
    assert ack.status_code == 200
    assert ack.json() == {"applied": 2, "unknown": 1, "mismatched": 0}
    assert service.dispatcher.inflight == 0


async def test_route_body_is_json_whatever_the_content_type(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/route", content=json.dumps(route_body()), headers={"content-type": "text/plain"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        pytest.param(b"{not json", None, "Invalid JSON", id="invalid-json"),
        pytest.param(b"", None, "Invalid JSON", id="empty"),
        pytest.param(b"[1, 2]", None, "should be an object", id="array"),
        pytest.param({"request_id": "r", "prompt_tokens": 5}, "model", "Field required", id="missing-model"),
        pytest.param(route_body(prompt_tokens=0), "prompt_tokens", "greater than or equal to 1", id="zero-prompt"),
        pytest.param(route_body(stream=True), "stream", "Extra inputs", id="extra-field"),
        pytest.param(route_body(block_hashes=[1, -2]), "block_hashes.1", "greater than or equal to 0", id="negative"),
        pytest.param(route_body(block_hashes=[2**64]), "block_hashes.0", "less than", id="over-64-bits"),
        pytest.param(route_body(block_hashes=["x"]), "block_hashes.0", "valid integer", id="string-hash"),
        pytest.param(route_body(block_hashes=[0] * (MAX_BLOCKS + 1)), "block_hashes", "at most", id="too-many"),
        pytest.param(route_body(request_id=""), "request_id", "at least 1", id="empty-id"),
        pytest.param(route_body(exclude="a"), "exclude", "valid array", id="exclude-not-list"),
    ],
)
async def test_bad_route_bodies_are_400_naming_the_field(
    client: httpx.AsyncClient, service: RouterService, body: bytes | dict[str, object], param: str | None, fragment: str
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = await client.post("/v1/route", content=content)
    assert fragment in _assert_error(r, 400, "BadRequestError", param)
    assert service.dispatcher.inflight == 0
    assert metric_value(service.metrics.render().decode(), 'lodestar_router_bad_requests_total{endpoint="route"}') == 1


@pytest.mark.parametrize(
    ("body", "param"),
    [
        pytest.param({"events": []}, "events", id="empty-batch"),
        pytest.param(
            {"events": [{"decision_id": "r", "instance_id": "a", "kind": "done"}]}, "events.0.kind", id="kind"
        ),
        pytest.param(
            {"events": [{"decision_id": "r", "instance_id": "a", "kind": "finished", "ttft_s": -1}]},
            "events.0.ttft_s",
            id="negative-ttft",
        ),
        pytest.param({"evts": []}, "events", id="misspelt"),
    ],
)
async def test_bad_feedback_bodies_are_400(client: httpx.AsyncClient, body: dict[str, object], param: str) -> None:
    _assert_error(await client.post("/v1/feedback", json=body), 400, "BadRequestError", param)


async def test_no_instance_is_503(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/route", json=route_body(model="unknown-model"))
    assert "unknown-model" in _assert_error(r, 503, "ServiceUnavailableError", "model")
    r = await client.post("/v1/route", json=route_body(exclude=["a", "b"]))
    _assert_error(r, 503, "ServiceUnavailableError", "model")


async def test_unknown_path_and_method_have_the_error_shape(client: httpx.AsyncClient) -> None:
    _assert_error(await client.get("/v1/nope"), 404, "NotFoundError", None)
    _assert_error(await client.get("/v1/route"), 405, "MethodNotAllowedError", None)


async def test_model_endpoint_reports_active_latest_and_rejections(model_state: Callable[[int], ModelState]) -> None:
    service = _service("lodestar")
    app = build_app(service.dispatcher, service.metrics, service.health)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router") as client:
        info = (await client.get("/v1/model")).json()
        assert (info["policy"], info["learned"], info["active_version"], info["latest_version"]) == (
            "lodestar",
            True,
            None,
            None,
        )
        assert await service.installer.offer(model_update(model_state(3)))
        assert not await service.installer.offer(model_update(model_state(4), sha256="f" * 64))
        info = (await client.get("/v1/model")).json()
        assert (info["active_version"], info["latest_version"], info["confident"]) == (3, 3, True)
        assert info["active_metrics"]["val_mae_log_ttft"] == pytest.approx(model_state(3).metrics["val_mae_log_ttft"])
        assert (info["rejected"], info["rejected_by_reason"]) == (1, {"sha256_mismatch": 1})
        assert info["last_rejection"]["version"] == 4 and info["last_rejection"]["reason"] == "sha256_mismatch"
        text = (await client.get("/metrics")).text
        assert metric_value(text, "lodestar_router_model_version") == 3
        assert metric_value(text, 'lodestar_router_models_rejected_total{reason="sha256_mismatch"}') == 1
        r = await client.post("/v1/route", json=route_body())
        assert (r.json()["model_version"], r.json()["fallback"]) == (3, False)


async def test_health_and_metrics(client: httpx.AsyncClient) -> None:
    await client.post("/v1/route", json=route_body())
    health = (await client.get("/health")).json()
    assert health == {
        "status": "ok",
        "policy": "round-robin",
        "model_version": None,
        "instances": 2,
        "healthy_instances": 2,
        "inflight": 1,
        "pending_events": 1,
        "admin": False,
    }
    text = (await client.get("/metrics")).text
    assert metric_value(text, "lodestar_router_instances") == 2
    assert metric_value(text, "lodestar_router_inflight_decisions") == 1
    assert metric_value(text, "lodestar_router_events_accepted_total") == 1
    assert metric_value(text, "lodestar_router_events_dropped_total") == 0
    assert metric_value(text, 'lodestar_router_policy{policy="round-robin"}') == 1
    assert metric_value(text, 'lodestar_router_decide_latency_seconds_count{policy="round-robin"}') == 1
    assert metric_value(text, 'lodestar_router_fallback_decisions_total{policy="round-robin"}') == 0


async def test_a_failing_policy_is_a_500_with_the_error_shape(service: RouterService) -> None:
    class Broken(Policy):
        name = "broken"

        def decide(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Decision:
            raise RuntimeError("bug")

    service.dispatcher.swap_policy(Broken())
    app = build_app(service.dispatcher, service.metrics, service.health)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
        r = await client.post("/v1/route", json=route_body())
    assert "RuntimeError" in _assert_error(r, 500, "InternalServerError", None)
    assert service.dispatcher.inflight == 0


async def test_failed_feedback_from_every_instance_ejects_no_more_than_the_cap(
    client: httpx.AsyncClient, service: RouterService
) -> None:
    decisions = [(await client.post("/v1/route", json=route_body(request_id=f"f{k}"))).json() for k in range(2)]
    assert {d["instance_id"] for d in decisions} == {"a", "b"}  # round-robin: one each
    events = [
        {
            "decision_id": d["decision_id"],
            "instance_id": d["instance_id"],
            "kind": "failed",
            "error": "upstream_connect",
        }
        for d in decisions
    ]
    assert (await client.post("/v1/feedback", json={"events": events})).json()["applied"] == 2
    # two instances, at most half (at least one) ejected: the second failure is held back
    assert (await client.get("/health")).json()["healthy_instances"] == 1
    text = (await client.get("/metrics")).text
    assert metric_value(text, "lodestar_router_ejections_total") == 1
    assert metric_value(text, "lodestar_router_ejections_capped_total") == 1
    assert metric_value(text, "lodestar_router_instances_ejected") == 1


async def test_a_first_token_timeout_on_an_instance_serving_others_ejects_nothing(
    client: httpx.AsyncClient, service: RouterService
) -> None:
    """Queueing, not failure: after ``late`` was routed to an instance, another request on it
    got its first token; ``late`` then misses its first-token deadline. A request that got its
    own first token and then timed out (an idle deadline) still ejects."""
    routed = [(await client.post("/v1/route", json=route_body(request_id=f"q{k}"))).json() for k in range(4)]
    on_a = [d for d in routed if d["instance_id"] == "a"]
    on_b = [d for d in routed if d["instance_id"] == "b"]
    assert len(on_a) == len(on_b) == 2  # round-robin

    def fb(d: dict[str, Any], kind: str, error: str | None = None) -> dict[str, Any]:
        return {"decision_id": d["decision_id"], "instance_id": d["instance_id"], "kind": kind, "error": error}

    events = [
        fb(on_a[0], "first_token"),  # a serves its first request after the second was routed
        fb(on_a[1], "failed", "first_token_timeout"),  # spared
        fb(on_b[0], "first_token"),
        fb(on_b[0], "failed", "idle_timeout"),  # it had its first token: ejects
    ]
    assert (await client.post("/v1/feedback", json={"events": events})).json()["applied"] == 4
    text = (await client.get("/metrics")).text
    assert metric_value(text, "lodestar_router_ejections_spared_total") == 1
    assert metric_value(text, "lodestar_router_ejections_total") == 1
    assert service.directory.ejected_ids(time.monotonic()) == ["b"]
