"""The admin API, on its own port, behind a bearer token taken from the environment.

- ``POST /admin/policy`` ``{"profile": name-or-yaml-path}``: build a new policy with the full
  plugin registry and swap it in (one reference assignment; the FleetState is kept, and a
  learned policy gets the newest valid model at once).
- ``POST /admin/objective`` ``{"ttft": …, "ttft_tail": …, "tail_z": …, "tpot": …, "e2e": …}``:
  set the learned policy's objective (400 if the policy in force is not learned).
- ``GET /admin/state``: the fleet as the router sees it.

A missing or wrong token is 401 (checked before the body is read; the comparison is
``hmac.compare_digest``, constant time); an invalid body is 400 naming the field. Bodies are
JSON whatever the content type (``curl -d`` sends a form type).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from lodestar.learn.objective import Objective
from lodestar.learn.policy import LodestarPolicy
from lodestar.openai_errors import OpenAIError, bad_request, install_error_handlers, parse_body
from lodestar.policy.contracts import Policy
from lodestar.policy.profile_spec import ProfileError
from lodestar_router.dispatch import Dispatcher, NotLearnedError


class PolicyChange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str = Field(min_length=1, max_length=4096, description="shipped profile name or YAML file path")


class PolicyInfo(BaseModel):
    policy: str
    profile: str
    learned: bool
    model_version: int | None


class ObjectiveInfo(BaseModel):
    policy: str
    objective: Objective


class InstanceInfo(BaseModel):
    instance_id: str
    url: str
    model: str
    static: bool
    hardware: str | None
    healthy: bool
    stale: bool
    state_age_s: float | None
    num_running: int | None
    num_waiting: int | None
    kv_usage_frac: float | None
    prefix_hit_rate: float | None
    max_model_len: int | None
    inflight_requests: int | None
    inflight_prefill_requests: int | None
    inflight_prefill_tokens: int | None


class FleetInfo(BaseModel):
    policy: str
    profile: str
    model_version: int | None
    latest_model_version: int | None
    inflight: int
    staleness_s: float
    remove_after_s: float
    instances: list[InstanceInfo]


def bearer_auth(token: SecretStr) -> Callable[..., object]:
    """A dependency that accepts only ``Authorization: Bearer <token>``."""
    expected = token.get_secret_value().encode()

    async def check(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise OpenAIError(
                HTTPStatus.UNAUTHORIZED,
                "missing or invalid admin token (send 'Authorization: Bearer <LODESTAR_ROUTER_ADMIN_TOKEN>')",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


class AdminState:
    """What the admin routes act on: the dispatcher, a policy builder, the profile in force."""

    def __init__(self, dispatcher: Dispatcher, build_policy: Callable[[str], Policy], profile: str) -> None:
        self.dispatcher = dispatcher
        self.build_policy = build_policy
        self.profile = profile

    def switch(self, profile: str) -> PolicyInfo:
        try:
            policy = self.build_policy(profile)
        except ProfileError as exc:
            raise bad_request(str(exc), "profile") from None
        self.dispatcher.swap_policy(policy)
        self.profile = profile
        return self.policy_info()

    def policy_info(self) -> PolicyInfo:
        policy = self.dispatcher.policy
        return PolicyInfo(
            policy=policy.name,
            profile=self.profile,
            learned=isinstance(policy, LodestarPolicy),
            model_version=self.dispatcher.model_version,
        )

    def fleet(self, now_s: float) -> FleetInfo:
        d = self.dispatcher
        directory = d.directory
        instances = []
        for st in directory.status(now_s):
            v = st.view
            instances.append(
                InstanceInfo(
                    instance_id=st.instance_id,
                    url=st.url,
                    model=st.model,
                    static=st.static,
                    hardware=st.hardware,
                    healthy=st.healthy,
                    stale=st.stale,
                    state_age_s=st.age_s,
                    num_running=v.num_running if v else None,
                    num_waiting=v.num_waiting if v else None,
                    kv_usage_frac=v.kv_usage_frac if v else None,
                    prefix_hit_rate=v.prefix_hit_rate if v else None,
                    max_model_len=v.max_model_len if v else None,
                    inflight_requests=v.inflight_requests if v else None,
                    inflight_prefill_requests=v.inflight_prefill_requests if v else None,
                    inflight_prefill_tokens=v.inflight_prefill_tokens if v else None,
                )
            )
        return FleetInfo(
            policy=d.policy.name,
            profile=self.profile,
            model_version=d.model_version,
            latest_model_version=d.models.latest_version,
            inflight=d.inflight,
            staleness_s=directory.staleness_s,
            remove_after_s=directory.remove_after_s,
            instances=instances,
        )


def _body_doc(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def build_admin_app(state: AdminState, token: SecretStr) -> FastAPI:
    app = FastAPI(title="Lodestar router admin", docs_url=None, redoc_url=None)
    install_error_handlers(app, catch_unexpected=True)
    router = APIRouter(prefix="/admin", dependencies=[Depends(bearer_auth(token))])

    @router.post("/policy", openapi_extra=_body_doc(PolicyChange))
    async def post_policy(request: Request) -> PolicyInfo:
        change = parse_body(PolicyChange, await request.body())
        return state.switch(change.profile)

    @router.get("/policy")
    async def get_policy() -> PolicyInfo:
        return state.policy_info()

    @router.post("/objective", openapi_extra=_body_doc(Objective))
    async def post_objective(request: Request) -> ObjectiveInfo:
        objective = parse_body(Objective, await request.body())
        try:
            state.dispatcher.set_objective(objective)
        except NotLearnedError as exc:
            raise bad_request(str(exc)) from None
        return ObjectiveInfo(policy=state.dispatcher.policy.name, objective=objective)

    @router.get("/state")
    async def get_state() -> FleetInfo:
        return state.fleet(time.monotonic())

    app.include_router(router)
    return app
