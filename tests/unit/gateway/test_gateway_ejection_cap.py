"""A fleet that fails everywhere is not ejected whole: at most ``ejection_max_fraction`` of a
model's instances (at least one) are out at once, and the failures the cap held back are counted.
A real gateway in front of ports nobody listens on, and the service's /metrics text."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from gateway_helpers import MODEL, running_gateway

from lodestar.bus.settings import KafkaSettings
from lodestar.localinfra.ports import free_port_block
from lodestar_gateway.service import GatewayService
from lodestar_gateway.settings import GatewaySettings, StaticInstance

CHAT = "/v1/chat/completions"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 2}


@pytest.mark.parametrize(("fraction", "ejected"), [(0.5, 2), (1.0, 4)])
async def test_instances_failing_everywhere_are_ejected_up_to_the_cap(fraction: float, ejected: int) -> None:
    base = free_port_block(4)  # nobody listens there: every connection is refused
    instances = [{"instance_id": f"dead-{k}", "url": f"http://127.0.0.1:{base + k}", "model": MODEL} for k in range(4)]
    async with (
        running_gateway(instances=instances, ejection_max_fraction=fraction, max_attempts=4) as gw,
        httpx.AsyncClient(timeout=10) as client,
    ):
        codes = [(await client.post(gw.url + CHAT, json=BODY)).status_code for _ in range(3)]
    assert set(codes) <= {502, 503}, codes
    ejections = gw.core.proxy.fleet.ejections
    assert ejections.ejected_count() == ejected == ejections.counters.ejections
    assert (ejections.counters.capped > 0) is (ejected < 4), ejections.counters


def test_the_gateway_service_exports_the_ejections_the_cap_held_back() -> None:
    instances = [StaticInstance(instance_id=f"i{k}", url=f"http://i{k}:8000", model=MODEL) for k in range(2)]
    settings = GatewaySettings(instances=instances, router_url="", json_logs=False)
    service = GatewayService.build(settings, KafkaSettings(bootstrap_servers="127.0.0.1:1"))  # never started
    now = time.monotonic()
    assert [service.fleet.report(i.instance_id, "first_token_timeout", now) for i in instances] == [1.0, None]
    text = service.metrics.render().decode()
    for name, value in [
        ("lodestar_gateway_ejections_total", 1),
        ("lodestar_gateway_ejections_capped_total", 1),
        ("lodestar_gateway_instances_ejected", 1),
    ]:
        assert re.search(rf"^{name} {value}\.0$", text, re.MULTILINE), name
