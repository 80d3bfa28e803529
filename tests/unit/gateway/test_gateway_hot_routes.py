"""The services' ASGI front (:class:`lodestar.serving.HotRoutes`, the gateway's completion
paths, the router's route and feedback): POST on a hot path goes to its handler directly, the
rest to the FastAPI app; a handler that raises (a bug) is the 500 its service gives. Real
uvicorn on a socket, real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http import HTTPStatus

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from lodestar.openai_errors import OpenAIError
from lodestar.serving import ApiServer, HotRoutes, bind_socket

pytestmark = pytest.mark.timeout(30)


async def ok(request: Request) -> Response:
    return Response(b'{"hot": true}', media_type="application/json")


async def broken(request: Request) -> Response:
    raise RuntimeError("a bug in a handler")


@pytest.fixture
async def front() -> AsyncIterator[str]:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    routes = {"/v1/chat/completions": ok, "/v1/completions": broken}
    for path, handler in routes.items():  # as build_app: the app knows them too (405, OpenAPI)
        app.add_route(path, handler, methods=["POST"])
    sock = bind_socket("127.0.0.1", 0, "test")

    def internal(exc: Exception) -> Response:
        return OpenAIError(
            HTTPStatus.INTERNAL_SERVER_ERROR, f"internal gateway error ({type(exc).__name__})"
        ).response()

    server = ApiServer(HotRoutes(app, routes, internal), sock)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def test_hot_paths_go_to_their_handlers_and_the_rest_to_the_app(front: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(100):  # the server task starts on the loop
            try:
                hot = await client.post(f"{front}/v1/chat/completions", json={})
                break
            except httpx.ConnectError:
                continue
        assert hot.status_code == 200 and hot.json() == {"hot": True}
        assert (await client.get(f"{front}/health")).json() == {"status": "ok"}
        wrong_method = await client.get(f"{front}/v1/chat/completions")
        assert wrong_method.status_code == 405  # the app's answer: the path exists for POST only
        assert (await client.post(f"{front}/v1/nothing-here", json={})).status_code == 404


async def test_a_handler_that_raises_is_an_openai_style_500(front: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(100):
            try:
                r = await client.post(f"{front}/v1/completions", json={})
                break
            except httpx.ConnectError:
                continue
    assert r.status_code == 500
    body = r.json()
    assert body["error"]["message"] == "internal gateway error (RuntimeError)" and body["error"]["type"]
