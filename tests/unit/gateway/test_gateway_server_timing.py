"""The ``Server-Timing`` header: every answer that reached an instance says how long the gateway
spent reading and parsing the request (``parse``), deciding (``route``) and in all before it
issued the upstream request (``gateway``), in milliseconds; the first two are disjoint parts of
the third. A request refused before routing has none. A real gateway in front of real
emulated instances."""

from __future__ import annotations

import re
import time

import httpx
import pytest
from gateway_helpers import MODEL, dead_url, running_gateway, static_instances

from lodestar.emulator.fleet import EmulatedFleet

pytestmark = pytest.mark.timeout(60)

CHAT = "/v1/chat/completions"
MSGS = [{"role": "user", "content": "Tell me about the sea, in a few words."}]
_METRIC = re.compile(r"^(\w+);dur=(\d+\.\d{3})$")


def timings(response: httpx.Response) -> dict[str, float]:
    """The header's metrics, by name (ms); fails on anything but ``name;dur=N.NNN`` entries."""
    out: dict[str, float] = {}
    for entry in response.headers["server-timing"].split(", "):
        match = _METRIC.match(entry)
        assert match is not None, entry
        out[match[1]] = float(match[2])
    return out


def assert_parts_of_gateway(t: dict[str, float]) -> None:
    """``parse`` and ``route`` are positive, disjoint parts of ``gateway`` (each entry is
    rounded to the microsecond, hence the tolerance)."""
    assert list(t) == ["parse", "route", "gateway"]
    assert t["parse"] > 0 and t["route"] > 0
    assert t["parse"] + t["route"] <= t["gateway"] + 0.002


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_an_answer_says_how_long_the_gateway_took_before_the_upstream_request(
    emulated: EmulatedFleet, stream: bool
) -> None:
    async with running_gateway(instances=static_instances(emulated)) as gw, httpx.AsyncClient() as client:
        body = {"model": MODEL, "messages": MSGS, "max_tokens": 4, "stream": stream}
        t0 = time.perf_counter()
        r = await client.post(gw.url + CHAT, json=body)
        elapsed_ms = (time.perf_counter() - t0) * 1e3
        assert r.status_code == 200, r.text
        out = await gw.outcome(r.headers["x-request-id"])
    t = timings(r)
    assert_parts_of_gateway(t)
    # before the first token (the outcome's TTFT starts at the same moment), in milliseconds
    assert out.ttft_s is not None and t["gateway"] < out.ttft_s * 1e3 < elapsed_ms


async def test_a_retried_request_carries_it_too(emulated: EmulatedFleet) -> None:
    live = static_instances(emulated)[0]
    instances = [{"instance_id": "a-dead", "url": dead_url(), "model": MODEL}, {**live, "instance_id": "b-live"}]
    async with running_gateway(instances=instances, fallback_profile="round-robin") as gw, httpx.AsyncClient() as c:
        r = await c.post(gw.url + CHAT, json={"model": MODEL, "messages": MSGS, "max_tokens": 3})
        assert r.status_code == 200, r.text
        out = await gw.outcome(r.headers["x-request-id"])
    assert out.attempts == 2 and out.instance_id == "b-live"
    t = timings(r)  # both decisions and the refused connection are inside ``gateway``
    assert_parts_of_gateway(t)
    assert out.ttft_s is not None and t["gateway"] < out.ttft_s * 1e3


async def test_an_upstream_error_carries_it_and_a_refusal_before_routing_does_not(emulated: EmulatedFleet) -> None:
    instance = emulated.instances["a10g-0"]
    only = [i for i in static_instances(emulated) if i["instance_id"] == "a10g-0"]
    too_long = {"model": MODEL, "prompt": [i % 50_000 for i in range(instance.max_model_len - 5)]}
    async with running_gateway(instances=only) as gw, httpx.AsyncClient(timeout=30) as client:
        upstream_400 = await client.post(gw.url + "/v1/completions", json=too_long)
        refused = await client.post(gw.url + CHAT, json={"model": MODEL, "messages": []})
    assert upstream_400.status_code == 400 and "maximum context length" in upstream_400.json()["error"]["message"]
    assert_parts_of_gateway(timings(upstream_400))
    assert refused.status_code == 400 and "server-timing" not in refused.headers
