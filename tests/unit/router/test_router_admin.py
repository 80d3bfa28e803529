"""The admin API: bearer token (constant-time check) before anything else, policy switch,
objective, fleet state, and 400s naming the field."""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from router_helpers import MODEL, model_update, route_body

from lodestar.bus.settings import KafkaSettings
from lodestar.learn.blob import ModelState
from lodestar.learn.objective import Objective
from lodestar.learn.policy import LodestarPolicy
from lodestar_router import admin
from lodestar_router.admin import build_admin_app
from lodestar_router.api import build_app
from lodestar_router.service import RouterService
from lodestar_router.settings import RouterSettings, StaticInstance

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def service() -> RouterService:
    settings = RouterSettings(
        instances=[StaticInstance(instance_id=i, url=f"http://{i}:1", model=MODEL) for i in ("a", "b")],
        profile="round-robin",
        admin_token=SecretStr(TOKEN),
    )
    return RouterService.build(settings, KafkaSettings(bootstrap_servers="127.0.0.1:1"))


@pytest.fixture
async def clients(service: RouterService) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(admin client, public client) on the same service."""
    assert service.settings.admin_token is not None
    admin_app = build_admin_app(service.admin, service.settings.admin_token)
    public_app = build_app(service.dispatcher, service.metrics, service.health)
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=admin_app), base_url="http://admin") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=public_app), base_url="http://router") as p,
    ):
        yield a, p


def _error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    err: dict[str, object] = response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == status
    return err


CALLS = [
    pytest.param("GET", "/admin/state", None, id="state"),
    pytest.param("POST", "/admin/policy", {"profile": "random"}, id="policy"),
    pytest.param("POST", "/admin/objective", {"ttft": 1.0}, id="objective"),
]


@pytest.mark.parametrize(("method", "path", "body"), CALLS)
@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="missing"),
        pytest.param("Bearer wrong-token", id="wrong"),
        pytest.param(f"Bearer {TOKEN}x", id="longer"),
        pytest.param(f"Basic {TOKEN}", id="basic-scheme"),
        pytest.param(TOKEN, id="no-scheme"),
        pytest.param("Bearer ", id="empty"),
    ],
)
async def test_bad_token_is_401(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    service: RouterService,
    method: str,
    path: str,
    body: dict[str, object] | None,
    authorization: str | None,
) -> None:
    client, _ = clients
    headers = {"Authorization": authorization} if authorization is not None else {}
    r = await client.request(method, path, json=body, headers=headers)
    err = _error(r, 401)
    assert err["type"] == "AuthenticationError" and r.headers["www-authenticate"] == "Bearer"
    assert service.dispatcher.policy.name == "round-robin"


@pytest.mark.parametrize(("method", "path", "body"), CALLS)
async def test_good_token_is_accepted(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    method: str,
    path: str,
    body: dict[str, object] | None,
) -> None:
    client, _ = clients
    r = await client.request(method, path, json=body, headers=AUTH)
    # the objective needs the learned policy: a 400, but past the token check
    assert r.status_code == (400 if path == "/admin/objective" else 200), r.text


async def test_token_is_compared_in_constant_time(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(admin.hmac, "compare_digest", spy)
    client, _ = clients
    assert (await client.get("/admin/state", headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await client.get("/admin/state", headers=AUTH)).status_code == 200
    assert calls == [(b"nope", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


async def test_token_is_checked_before_the_body(clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    client, _ = clients
    r = await client.post("/admin/policy", content=b"{not json", headers={"Authorization": "Bearer bad"})
    _error(r, 401)


async def test_switch_policy_keeps_the_fleet(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], service: RouterService
) -> None:
    client, public = clients
    fleet = service.directory.fleet
    first = (await public.post("/v1/route", json=route_body(request_id="r1"))).json()
    r = await client.post("/admin/policy", json={"profile": "least-request"}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json() == {"policy": "least-request", "profile": "least-request", "learned": False, "model_version": None}
    assert service.dispatcher.policy.name == "least-request" and service.directory.fleet is fleet
    second = (await public.post("/v1/route", json=route_body(request_id="r2"))).json()
    assert second["policy"] == "least-request"
    assert second["instance_id"] != first["instance_id"]  # the in-flight request still counts
    state = (await client.get("/admin/state", headers=AUTH)).json()
    assert (state["policy"], state["profile"], state["inflight"]) == ("least-request", "least-request", 2)
    assert "lodestar_router_policy_swaps_total 1.0" in (await public.get("/metrics")).text


async def test_switch_to_a_yaml_profile(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], service: RouterService, tmp_path: Path
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nscorers: [{type: queue-scorer, weight: 1}]\npicker: {type: max-score}\n")
    client, _ = clients
    r = await client.post("/admin/policy", content=json.dumps({"profile": str(path)}), headers=AUTH)
    assert r.status_code == 200, r.text
    assert service.dispatcher.policy.name == "mine" and r.json()["profile"] == str(path)


async def test_switch_to_lodestar_gets_the_newest_model(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    service: RouterService,
    model_state: Callable[[int], ModelState],
) -> None:
    assert await service.installer.offer(model_update(model_state(6)))
    client, _ = clients
    r = await client.post("/admin/policy", json={"profile": "lodestar"}, headers=AUTH)
    assert r.json() == {"policy": "lodestar", "profile": "lodestar", "learned": True, "model_version": 6}


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        pytest.param(b"{not json", None, "Invalid JSON", id="invalid-json"),
        pytest.param({}, "profile", "Field required", id="missing"),
        pytest.param({"profile": ""}, "profile", "at least 1", id="empty"),
        pytest.param({"profile": "random", "seed": 3}, "seed", "Extra inputs", id="extra"),
        pytest.param({"profile": "no-such-profile"}, "profile", "unknown profile 'no-such-profile'", id="unknown"),
        pytest.param({"profile": "/nonexistent/x.yaml"}, "profile", "cannot read profile file", id="missing-file"),
    ],
)
async def test_bad_policy_bodies_are_400_naming_the_field(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    service: RouterService,
    body: bytes | dict[str, object],
    param: str | None,
    fragment: str,
) -> None:
    client, _ = clients
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    err = _error(await client.post("/admin/policy", content=content, headers=AUTH), 400)
    assert err["param"] == param and fragment in str(err["message"])
    assert service.dispatcher.policy.name == "round-robin"


async def test_bad_profile_yaml_names_the_field(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\npicker: {type: max-score, params: {temperature: 2}}\n")
    client, _ = clients
    err = _error(await client.post("/admin/policy", json={"profile": str(path)}, headers=AUTH), 400)
    assert err["param"] == "profile" and "temperature" in str(err["message"])


async def test_objective(clients: tuple[httpx.AsyncClient, httpx.AsyncClient], service: RouterService) -> None:
    client, _ = clients
    err = _error(await client.post("/admin/objective", json={"ttft": 1.0}, headers=AUTH), 400)
    assert "not learned" in str(err["message"])
    await client.post("/admin/policy", json={"profile": "lodestar"}, headers=AUTH)
    r = await client.post("/admin/objective", json={"ttft": 0.5, "ttft_tail": 1.0, "tail_z": 2.0}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["objective"] == Objective(ttft=0.5, ttft_tail=1.0, tail_z=2.0).model_dump()
    policy = service.dispatcher.policy
    assert isinstance(policy, LodestarPolicy) and policy.objective == Objective(ttft=0.5, ttft_tail=1.0, tail_z=2.0)


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        pytest.param({"ttft": -1}, "ttft", "greater than or equal to 0", id="negative"),
        pytest.param({"ttfx": 1}, "ttfx", "Extra inputs", id="typo"),
        pytest.param({"ttft": 0, "e2e": 0}, None, "at least one objective weight", id="all-zero"),
        pytest.param({"tpot": "fast"}, "tpot", "valid number", id="not-a-number"),
    ],
)
async def test_bad_objective_bodies_are_400(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
    service: RouterService,
    body: dict[str, object],
    param: str | None,
    fragment: str,
) -> None:
    client, _ = clients
    await client.post("/admin/policy", json={"profile": "lodestar"}, headers=AUTH)
    err = _error(await client.post("/admin/objective", json=body, headers=AUTH), 400)
    assert err["param"] == param and fragment in str(err["message"])
    policy = service.dispatcher.policy
    assert isinstance(policy, LodestarPolicy) and policy.objective == Objective()


async def test_state_lists_the_fleet(clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    client, public = clients
    await public.post("/v1/route", json=route_body(prompt_tokens=48))
    state = (await client.get("/admin/state", headers=AUTH)).json()
    assert (state["staleness_s"], state["remove_after_s"], state["inflight"]) == (2.0, 30.0, 1)
    by_id = {i["instance_id"]: i for i in state["instances"]}
    assert sorted(by_id) == ["a", "b"]
    assert all(i["static"] and i["healthy"] and i["state_age_s"] is None for i in by_id.values())
    assert sum(i["inflight_requests"] for i in by_id.values()) == 1
    assert sum(i["inflight_prefill_tokens"] for i in by_id.values()) == 48
