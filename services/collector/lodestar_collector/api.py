"""The collector's own HTTP API: ``GET /health`` (liveness + a summary) and ``GET /metrics``.

``/health`` answers 200 while the process runs; the body says how many instances are
configured and healthy and how many events wait for the broker, so an operator sees a broker
outage or a dead fleet without reading logs.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI, Response
from pydantic import BaseModel

from lodestar.openai_errors import install_error_handlers
from lodestar_collector.metrics import CONTENT_TYPE, CollectorMetrics


class InstanceHealth(BaseModel):
    instance_id: str
    url: str
    healthy: bool
    consecutive_failures: int


class Health(BaseModel):
    status: str
    instances: int
    healthy: int
    pending_events: int
    detail: list[InstanceHealth]


def build_app(
    metrics: CollectorMetrics,
    health: Callable[[], Health],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    app = FastAPI(title="Lodestar collector", lifespan=lifespan)
    install_error_handlers(app)  # a wrong path or method answers in the shape of every Lodestar service

    @app.get("/health")
    async def get_health() -> Health:
        return health()

    @app.get("/metrics")
    async def get_metrics() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    return app
