"""API keys, rate limits and stream slots on a real gateway: 401 before the body is read,
429 with ``Retry-After`` per key, stream slots released on every way a stream ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from gateway_helpers import MODEL, dead_url, running_gateway, static_instances

from lodestar.emulator.fleet import EmulatedFleet
from lodestar_gateway.auth import KeyConfigError, hash_line
from lodestar_gateway.service import build_core
from lodestar_gateway.settings import GatewaySettings

pytestmark = pytest.mark.timeout(60)

CHAT = "/v1/chat/completions"
ALICE_KEY, BOB_KEY = "lsk-alice-test-key-0123456789", "lsk-bob-test-key-0123456789"
KEYS = f"{hash_line('alice', ALICE_KEY)},{hash_line('bob', BOB_KEY)}"
MSGS = [{"role": "user", "content": "Tell me about the sea, in a few words."}]
INVALID = {"model": MODEL}  # admitted, then 400: cheap requests that still count


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _error(r: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    error: dict[str, Any] = r.json()["error"]
    assert (error["type"], error["code"]) == (kind, status)
    return error


async def test_keys_are_required_when_configured(emulated: EmulatedFleet) -> None:
    async with (
        running_gateway(instances=static_instances(emulated), api_keys=KEYS, max_body_bytes=1024) as gw,
        httpx.AsyncClient() as client,
    ):
        body = {"model": MODEL, "messages": MSGS, "max_tokens": 2}
        for headers in ({}, bearer("lsk-wrong"), bearer(ALICE_KEY + "x"), {"authorization": f"Basic {ALICE_KEY}"}):
            error = _error(await client.post(gw.url + CHAT, json=body, headers=headers), 401, "AuthenticationError")
            assert ALICE_KEY not in error["message"]
        # refused before the body is read: a body over the limit is still a 401, not a 413
        _error(await client.post(gw.url + CHAT, content=b"x" * 5000), 401, "AuthenticationError")
        _error(await client.get(gw.url + "/v1/models"), 401, "AuthenticationError")
        _error(await client.get(gw.url + f"/v1/models/{MODEL}"), 401, "AuthenticationError")
        assert (await client.post(gw.url + CHAT, json=body, headers=bearer(ALICE_KEY))).status_code == 200
        assert (await client.post(gw.url + CHAT, json=body, headers={"api-key": BOB_KEY})).status_code == 200
        assert (await client.get(gw.url + "/v1/models", headers=bearer(BOB_KEY))).status_code == 200
        assert (await client.get(gw.url + "/health")).status_code == 200
        metrics = await gw.metrics()
    assert len(gw.outcomes) == 2  # refused requests have no outcome
    assert 'lodestar_gateway_requests_total{code="401",endpoint="chat",status="error"} 5.0' in metrics


async def test_no_keys_configured_means_open() -> None:
    async with running_gateway() as gw, httpx.AsyncClient() as client:
        _error(await client.post(gw.url + CHAT, json=INVALID), 400, "BadRequestError")


async def test_rate_limits_are_per_key_with_retry_after() -> None:
    limits = {"bob": {"rate_rps": 0.01, "burst": 4}}
    async with (
        running_gateway(api_keys=KEYS, rate_limit_rps=0.01, rate_limit_burst=2, key_limits=limits) as gw,
        httpx.AsyncClient() as client,
    ):
        alice = [await client.post(gw.url + CHAT, json=INVALID, headers=bearer(ALICE_KEY)) for _ in range(3)]
        assert [r.status_code for r in alice] == [400, 400, 429]
        error = _error(alice[2], 429, "RateLimitError")
        assert "0.01 requests per second" in error["message"] and "bursts of 2" in error["message"]
        assert 95 <= int(alice[2].headers["retry-after"]) <= 100  # whole seconds until a token is back
        # /v1/models draws on the same bucket
        _error(await client.get(gw.url + "/v1/models", headers=bearer(ALICE_KEY)), 429, "RateLimitError")
        bob = [await client.post(gw.url + CHAT, json=INVALID, headers=bearer(BOB_KEY)) for _ in range(5)]
        assert [r.status_code for r in bob] == [400, 400, 400, 400, 429]


async def test_without_keys_the_rate_limit_holds_for_the_whole_gateway() -> None:
    async with running_gateway(rate_limit_rps=0.01, rate_limit_burst=1) as gw, httpx.AsyncClient() as client:
        first = await client.post(gw.url + CHAT, json=INVALID)
        second = await client.post(gw.url + CHAT, json=INVALID, headers=bearer("anything"))
    assert (first.status_code, second.status_code) == (400, 429)


class OpenStream:
    """A long stream, opened and read up to its first bytes (the slot is taken by then). The
    byte iterator is kept: dropping it would close the stream."""

    def __init__(self, response: httpx.Response, chunks: AsyncIterator[bytes]) -> None:
        self.response, self.chunks = response, chunks
        self.headers = response.headers

    async def aclose(self) -> None:
        await self.response.aclose()


async def _open_stream(client: httpx.AsyncClient, url: str, key: str) -> OpenStream:
    body = {"model": MODEL, "messages": MSGS, "max_tokens": 4000, "stream": True}
    request = client.build_request("POST", url + CHAT, json=body, headers=bearer(key))
    response = await client.send(request, stream=True)
    assert response.status_code == 200
    chunks = response.aiter_bytes()
    await chunks.__anext__()
    return OpenStream(response, chunks)


async def test_streams_per_key_are_limited_and_slots_come_back(emulated: EmulatedFleet) -> None:
    settings: dict[str, Any] = {"instances": static_instances(emulated), "api_keys": KEYS, "max_streams_per_key": 1}
    short = {"model": MODEL, "messages": MSGS, "max_tokens": 2, "stream": True}
    async with running_gateway(**settings) as gw, httpx.AsyncClient(timeout=30) as client:
        first = await _open_stream(client, gw.url, ALICE_KEY)
        error = _error(await client.post(gw.url + CHAT, json=short, headers=bearer(ALICE_KEY)), 429, "RateLimitError")
        assert "at most 1 per API key" in error["message"]
        # other keys and non-streamed requests are not held back by alice's stream
        assert (await client.post(gw.url + CHAT, json=short, headers=bearer(BOB_KEY))).status_code == 200
        whole = {k: v for k, v in short.items() if k != "stream"}
        assert (await client.post(gw.url + CHAT, json=whole, headers=bearer(ALICE_KEY))).status_code == 200
        # the client leaves: the slot comes back once the exchange has ended
        await first.aclose()
        await gw.outcome(first.headers["x-request-id"])
        r = await client.post(gw.url + CHAT, json=short, headers=bearer(ALICE_KEY))
        assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
        # ...and after a normal end (the stream above), and after a failed one
        assert (await client.post(gw.url + CHAT, json=short, headers=bearer(ALICE_KEY))).status_code == 200
        assert gw.core.proxy.access.clients["alice"].streams.active == 0


async def test_a_failed_stream_gives_its_slot_back() -> None:
    instances = [{"instance_id": "dead", "url": dead_url(), "model": MODEL}]
    short = {"model": MODEL, "messages": MSGS, "max_tokens": 2, "stream": True}
    async with running_gateway(instances=instances, max_streams_per_key=1) as gw, httpx.AsyncClient() as client:
        codes = [(await client.post(gw.url + CHAT, json=short)).status_code for _ in range(3)]
        # an invalid stream request never takes a slot
        bad = await client.post(gw.url + CHAT, json={**short, "messages": []})
    # 502 (connection refused), then 503 once the dead instance is ejected: slots come back either way
    assert codes[0] == 502 and set(codes) <= {502, 503} and bad.status_code == 400
    assert gw.core.proxy.access.clients["anonymous"].streams.active == 0


async def test_concurrent_streams_beyond_the_limit_are_refused(emulated: EmulatedFleet) -> None:
    async with (
        running_gateway(instances=static_instances(emulated), max_streams_per_key=2) as gw,
        httpx.AsyncClient(timeout=30) as client,
    ):
        opened = [await _open_stream(client, gw.url, "unused") for _ in range(2)]
        assert gw.core.proxy.access.clients["anonymous"].streams.active == 2
        short = {"model": MODEL, "messages": MSGS, "max_tokens": 2, "stream": True}
        _error(await client.post(gw.url + CHAT, json=short), 429, "RateLimitError")
        await asyncio.gather(*(r.aclose() for r in opened))


@pytest.mark.parametrize(
    ("settings", "error", "fragment"),
    [
        ({"api_keys": "alice:" + "0" * 63}, KeyConfigError, "64 hex digits"),
        ({"api_keys": KEYS, "key_limits": {"carol": {}}}, ValueError, "limits for unknown keys: carol"),
        ({"key_limits": {"alice": {}}}, ValueError, "known: anonymous"),
    ],
)
def test_unusable_keys_or_limits_fail_the_build(
    settings: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        build_core(GatewaySettings(router_url="", **settings), lambda _: True)


def test_keys_file_and_env_together(tmp_path: Any) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# team\n{hash_line('carol', 'lsk-carol')}\n")
    core = build_core(GatewaySettings(router_url="", api_keys=KEYS, api_keys_file=path), lambda _: True)
    assert core.proxy.access.keys.names == ("alice", "bob", "carol")
    assert "carol" in core.proxy.access.clients.clients
