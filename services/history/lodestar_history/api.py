"""The history HTTP API: named queries, optional raw SELECT, health and metrics.

``GET /queries`` lists the named queries and their parameters; ``POST /query`` runs one
(``{"name": …, "params": {…}}``) and answers ``{"columns": […], "rows": [{…}, …]}``.
Errors, in the shape of every Lodestar service (OpenAI's, :mod:`lodestar.openai_errors`:
``{"error": {"message", "type", "param", "code"}}``): 400 bad body (naming its fields), bad
parameter or refused SQL, 404 unknown query, 403 raw SQL disabled, 502 ClickHouse rejected the
query, 503 ClickHouse unreachable. ``GET /health`` is 503 only
when ClickHouse does not answer; a consumer that is down (broker away) reports
``"status": "degraded"`` with 200, since restarting the process would not help.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from lodestar.openai_errors import OpenAIError, bad_request, install_error_handlers
from lodestar_history.jsonable import to_json
from lodestar_history.metrics import CONTENT_TYPE, HistoryMetrics
from lodestar_history.params import QueryParamError
from lodestar_history.queries import QueryCatalog, UnknownQueryError
from lodestar_history.sink import SinkStatus
from lodestar_history.sqltext import UnsafeQueryError, ensure_single_select
from lodestar_history.store import HistoryStore, QueryResult

ParamValue = str | int | float | bool | None


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    params: dict[str, ParamValue] = Field(default_factory=dict)


class SqlRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=100_000)


class Column(BaseModel):
    name: str
    type: str


class QueryResponse(BaseModel):
    name: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    row_count: int
    elapsed_s: float


class ParamInfo(BaseModel):
    name: str
    type: str
    required: bool
    default: str | None
    description: str


class QueryInfo(BaseModel):
    name: str
    description: str
    params: list[ParamInfo]


def build_app(
    store: HistoryStore,
    catalog: QueryCatalog,
    metrics: HistoryMetrics,
    sink_status: Callable[[], SinkStatus],
    allow_raw_sql: bool = False,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """The API over an opened ``store``; ``lifespan`` (optional) starts/stops the sink."""
    app = FastAPI(title="Lodestar history", description=__doc__, lifespan=lifespan)
    install_error_handlers(app)

    @app.get("/health")
    async def health() -> JSONResponse:
        try:
            ok: bool | None = await asyncio.wait_for(asyncio.to_thread(store.ping), 2.0)
        except TimeoutError:
            ok = None  # busy with a long query or insert: not a failure
        status = sink_status()
        body = {
            "status": "ok" if ok is not False and status.consumer_up else "degraded",
            "clickhouse": {True: "ok", False: "unreachable", None: "busy"}[ok],
            "target": store.target.describe(),
            "consumer_up": status.consumer_up,
            "buffered_rows": status.buffered_rows,
            "last_flush_age_s": None if status.last_flush_wall_s is None else time.time() - status.last_flush_wall_s,
            "consecutive_failures": status.consecutive_failures,
            "last_error": status.last_error,
        }
        return JSONResponse(body, status_code=503 if ok is False else 200)

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/queries")
    async def queries() -> list[QueryInfo]:
        return [
            QueryInfo(
                name=q.name,
                description=q.description,
                params=[
                    ParamInfo(
                        name=p.name, type=p.ch_type, required=p.required, default=p.default, description=p.description
                    )
                    for p in q.params
                ],
            )
            for q in catalog
        ]

    @app.post("/query")
    async def query(body: QueryRequest) -> QueryResponse:
        try:
            named = catalog.get(body.name)
            bound = named.bind(body.params, datetime.now(UTC))
        except UnknownQueryError as exc:
            metrics.queries.labels("unknown", "not_found").inc()
            raise OpenAIError(HTTPStatus.NOT_FOUND, str(exc), param="name") from None
        except QueryParamError as exc:
            metrics.queries.labels(body.name, "bad_params").inc()
            raise bad_request(str(exc), param="params") from None
        result = await _run(metrics, body.name, lambda: store.query(named.sql, bound))
        return _response(body.name, result)

    @app.post("/sql")
    async def sql(body: SqlRequest) -> QueryResponse:
        if not allow_raw_sql:
            raise OpenAIError(HTTPStatus.FORBIDDEN, "raw SQL is disabled (set LODESTAR_HISTORY_ALLOW_RAW_SQL=true)")
        try:
            text = ensure_single_select(body.sql)
        except UnsafeQueryError as exc:
            metrics.queries.labels("sql", "refused").inc()
            raise bad_request(f"refused: {exc}", param="sql") from None
        result = await _run(metrics, "sql", lambda: store.query_readonly(text))
        if len(set(result.columns)) != len(result.columns):
            raise bad_request(f"duplicate column names {list(result.columns)}; alias them", param="sql")
        return _response("sql", result)

    return app


async def _run(metrics: HistoryMetrics, name: str, call: Callable[[], QueryResult]) -> QueryResult:
    try:
        result = await asyncio.to_thread(call)
    except OperationalError as exc:
        metrics.queries.labels(name, "unavailable").inc()
        raise OpenAIError(HTTPStatus.SERVICE_UNAVAILABLE, f"ClickHouse unavailable: {_first_line(exc)}") from None
    except ClickHouseError as exc:
        metrics.queries.labels(name, "failed").inc()
        raise OpenAIError(HTTPStatus.BAD_GATEWAY, f"ClickHouse rejected the query: {_first_line(exc)}") from None
    metrics.queries.labels(name, "ok").inc()
    metrics.query_seconds.labels(name).observe(result.elapsed_s)
    return result


def _response(name: str, result: QueryResult) -> QueryResponse:
    return QueryResponse(
        name=name,
        columns=[Column(name=c, type=t) for c, t in zip(result.columns, result.types, strict=True)],
        rows=[{c: to_json(v) for c, v in zip(result.columns, row, strict=True)} for row in result.rows],
        row_count=len(result.rows),
        elapsed_s=result.elapsed_s,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__
