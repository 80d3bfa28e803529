"""schemathesis against the gateway's OpenAPI document, with real emulated instances behind
it and API keys on: no 5xx, every 4xx an OpenAI error body."""

from __future__ import annotations

import asyncio

import pytest
from gateway_helpers import running_gateway, static_instances
from openapi_fuzz import fuzz

from lodestar.emulator.fleet import EmulatedFleet
from lodestar_gateway.auth import hash_line

pytestmark = pytest.mark.timeout(120)

KEY = "lsk-fuzz-key-0123456789"


async def test_no_server_errors_on_generated_requests(emulated: EmulatedFleet) -> None:
    settings = {
        "instances": static_instances(emulated),
        "api_keys": hash_line("fuzz", KEY),
        "max_output_tokens": 4,  # keep valid requests short
        "max_prompt_tokens": 4096,
    }
    async with running_gateway(**settings) as gw:
        report = await asyncio.to_thread(fuzz, gw.url, 20, {"authorization": f"Bearer {KEY}"})
        unauthenticated = await asyncio.to_thread(fuzz, gw.url, 3)
    assert not report.failures, "\n".join(report.failures[:10])
    assert not unauthenticated.failures, "\n".join(unauthenticated.failures[:10])
    assert report.calls >= 50 and report.by_status.get(400, 0) > 0, report.by_status
    # without a key every API call is refused (only /health, /metrics and /openapi.json answer)
    assert set(unauthenticated.by_status) <= {200, 401}, unauthenticated.by_status
