"""The router's public HTTP API (the gateway's side of the contract in ``router_api``).

- ``POST /v1/route`` (``RouteRequest``) → ``RouteResponse``; 503 when no instance can serve.
- ``POST /v1/feedback`` (``FeedbackBatch``) → counts of applied / unknown / mismatched events.
- ``GET /v1/model``: the model in use, the newest valid one received, rejections.
- ``GET /health``, ``GET /metrics``.

Bodies are read raw and validated with ``model_validate_json`` (pydantic's own JSON parser,
no intermediate dicts): the route body carries up to thousands of block hashes. Every error is
an OpenAI-style body (400 for invalid bodies, naming the field).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from http import HTTPStatus

from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from lodestar.learn.policy import LodestarPolicy
from lodestar.openai_errors import OpenAIError, from_validation_error, install_error_handlers, internal_error
from lodestar.openapi_doc import Operation, document
from lodestar.policy.contracts import NoCandidateError
from lodestar.serving import HotRoutes
from lodestar_router.dispatch import Dispatcher
from lodestar_router.metrics import CONTENT_TYPE, RouterMetrics
from lodestar_schemas.router_api import FeedbackBatch, RouteRequest, RouteResponse

_JSON = "application/json"


class FeedbackAck(BaseModel):
    applied: int
    unknown: int
    mismatched: int


class RejectionInfo(BaseModel):
    version: int | None
    reason: str
    message: str


class ModelInfo(BaseModel):
    """``active_*``: the model the policy decides with (None while it falls back or is not
    learned); ``latest_*``: the newest valid model received (what a swapped-in policy gets)."""

    policy: str
    learned: bool
    confident: bool
    active_version: int | None
    active_metrics: dict[str, float] | None
    latest_version: int | None
    latest_metrics: dict[str, float] | None
    latest_trained_samples: int | None
    accepted: int
    rejected: int
    rejected_by_reason: dict[str, int]
    last_rejection: RejectionInfo | None


class Health(BaseModel):
    status: str
    policy: str
    model_version: int | None
    instances: int
    healthy_instances: int
    inflight: int
    pending_events: int
    admin: bool


def model_info(dispatcher: Dispatcher) -> ModelInfo:
    store, policy = dispatcher.models, dispatcher.policy
    latest, rejection = store.latest, store.last_rejection
    active = dispatcher.model_version
    metrics = store.metrics_of(active)
    return ModelInfo(
        policy=policy.name,
        learned=isinstance(policy, LodestarPolicy),
        confident=isinstance(policy, LodestarPolicy) and policy.confident,
        active_version=active,
        active_metrics=dict(metrics) if metrics is not None else None,
        latest_version=latest.version if latest is not None else None,
        latest_metrics=dict(latest.metrics) if latest is not None else None,
        latest_trained_samples=latest.trained_samples if latest is not None else None,
        accepted=store.accepted,
        rejected=store.rejected_total,
        rejected_by_reason={k: v for k, v in store.rejected.items() if v},
        last_rejection=RejectionInfo(**vars(rejection)) if rejection is not None else None,
    )


def build_app(dispatcher: Dispatcher, metrics: RouterMetrics, health: Callable[[], Health]) -> HotRoutes:
    """The FastAPI app behind :class:`~lodestar.serving.HotRoutes` for ``POST /v1/route`` and
    ``POST /v1/feedback`` (every request's critical path: their handlers answer their own
    refusals, so the framework's middleware stack is not crossed)."""
    app = FastAPI(title="Lodestar router", docs_url=None, redoc_url=None)
    install_error_handlers(app, catch_unexpected=True)

    async def route(request: Request) -> Response:
        body = await request.body()
        try:
            req = RouteRequest.model_validate_json(body)
        except ValidationError as exc:
            metrics.bad_requests.labels("route").inc()
            return from_validation_error(exc).response()
        try:
            answer = dispatcher.route(req, time.monotonic())
        except NoCandidateError as exc:
            return OpenAIError(HTTPStatus.SERVICE_UNAVAILABLE, str(exc), "model").response()
        return Response(answer.model_dump_json(), media_type=_JSON)

    async def feedback(request: Request) -> Response:
        body = await request.body()
        try:
            batch = FeedbackBatch.model_validate_json(body)
        except ValidationError as exc:
            metrics.bad_requests.labels("feedback").inc()
            return from_validation_error(exc).response()
        result = dispatcher.feedback(batch.events, time.monotonic())
        ack = FeedbackAck(applied=result.applied, unknown=result.unknown, mismatched=result.mismatched)
        return Response(ack.model_dump_json(), media_type=_JSON)

    # known to the app too (405 for other methods, the OpenAPI document)
    app.add_route("/v1/route", route, methods=["POST"], include_in_schema=False)
    app.add_route("/v1/feedback", feedback, methods=["POST"], include_in_schema=False)
    document(
        app,
        [
            Operation("/v1/route", "post", RouteRequest, RouteResponse, "choose an instance", (400, 503)),
            Operation("/v1/feedback", "post", FeedbackBatch, FeedbackAck, "first-token and final feedback"),
        ],
    )

    @app.get("/v1/model")
    async def get_model() -> ModelInfo:
        return model_info(dispatcher)

    @app.get("/health")
    async def get_health() -> Health:
        return health()

    @app.get("/metrics")
    async def get_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return HotRoutes(app, {"/v1/route": route, "/v1/feedback": feedback}, internal_error)
