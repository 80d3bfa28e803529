"""schemathesis against the router's OpenAPI documents (public API and admin API, each on a
real socket): no 5xx, every 4xx an OpenAI error body."""

from __future__ import annotations

import asyncio
import socket

import pytest
from openapi_fuzz import fuzz
from pydantic import SecretStr
from router_helpers import MODEL

from lodestar.bus.settings import KafkaSettings
from lodestar.serving import ApiServer, bind_socket
from lodestar_router.admin import build_admin_app
from lodestar_router.api import build_app
from lodestar_router.service import RouterService
from lodestar_router.settings import RouterSettings, StaticInstance

pytestmark = pytest.mark.timeout(120)

TOKEN = "admin-fuzz-token"
NO_INSTANCE = frozenset({"POST /v1/route 503"})


async def test_no_server_errors_on_generated_requests() -> None:
    instances = [StaticInstance(instance_id=i, url=f"http://{i}:8000", model=MODEL) for i in ("a", "b")]
    settings = RouterSettings(instances=instances, profile="least-request", json_logs=False)
    service = RouterService.build(settings, KafkaSettings(bootstrap_servers="127.0.0.1:1"))
    servers = []
    for app in (
        build_app(service.dispatcher, service.metrics, service.health),
        build_admin_app(service.admin, SecretStr(TOKEN)),
    ):
        sock = bind_socket("127.0.0.1", 0, "router")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        server = ApiServer(app, sock)
        server.start()
        servers.append(server)
    try:
        api, admin = (f"http://127.0.0.1:{s.port}" for s in servers)
        # 503 is the route contract's answer when no instance can serve the model (the gateway
        # then answers its client itself); any other 5xx is a failure.
        public = await asyncio.to_thread(fuzz, api, 20, None, NO_INSTANCE)
        admin_report = await asyncio.to_thread(fuzz, admin, 8, {"authorization": f"Bearer {TOKEN}"})
    finally:
        for server in servers:
            await server.stop()
    assert not public.failures, "\n".join(public.failures[:10])
    assert not admin_report.failures, "\n".join(admin_report.failures[:10])
    assert public.calls >= 80 and public.by_status.get(400, 0) > 0, public.by_status
    assert admin_report.by_status.get(200, 0) > 0, admin_report.by_status
