"""The request path end to end, in one process: a real gateway in front of real emulated
instances (no router: every decision is the local fallback's). Streams and whole responses,
pass-through of upstream errors, retries, broken streams, deadlines, client disconnects,
and the outcome of every request."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from gateway_helpers import MODEL, dead_url, running_gateway, static_instances

from lodestar.emulator.fleet import EmulatedFleet

pytestmark = pytest.mark.timeout(60)

CHAT = "/v1/chat/completions"
MSGS = [{"role": "user", "content": "Tell me about the sea, in a few words."}]


def _sse(raw: bytes) -> list[Any]:
    """Every event of a stream as JSON (``[DONE]`` as the string); fails on a malformed one."""
    text = raw.decode()
    assert text.endswith("\n\n"), text[-200:]
    out: list[Any] = []
    for event in text.split("\n\n")[:-1]:
        assert event.startswith("data: "), event
        payload = event.removeprefix("data: ")
        out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


async def _stream(client: httpx.AsyncClient, url: str, body: dict[str, Any], **kw: Any) -> httpx.Response:
    async with client.stream("POST", url, json=body, **kw) as response:
        await response.aread()
        return response


async def test_whole_chat_response_and_its_outcome(emulated: EmulatedFleet) -> None:
    async with running_gateway(instances=static_instances(emulated)) as gw, httpx.AsyncClient() as client:
        body = {"model": MODEL, "messages": MSGS, "max_tokens": 5, "temperature": 0.3, "vendor_field": {"x": 1}}
        r = await client.post(gw.url + CHAT, json=body, headers={"x-request-id": "my-req.1"})
        assert r.status_code == 200, r.text
        assert r.headers["x-request-id"] == "my-req.1"
        data = r.json()
        assert data["object"] == "chat.completion" and data["usage"]["completion_tokens"] == 5
        assert data["id"] == "chatcmpl-my-req.1"  # the request id went upstream
        out = await gw.outcome("my-req.1")
    assert (out.status, out.http_status, out.stream, out.completion_tokens, out.attempts) == ("ok", 200, False, 5, 1)
    assert out.instance_id in emulated.instances and out.policy == "least-request" and out.fallback
    # Upstream is always a stream: a whole response is timed like a stream.
    assert out.ttft_s is not None and out.tpot_s is not None
    assert 0 < out.ttft_s < out.e2e_s and out.tpot_s > 0
    assert out.prompt_tokens == data["usage"]["prompt_tokens"]  # same tokenizer, same template


async def test_a_stream_without_usage_has_none_but_the_outcome_counts_tokens(emulated: EmulatedFleet) -> None:
    async with running_gateway(instances=static_instances(emulated)) as gw, httpx.AsyncClient() as client:
        body = {"model": MODEL, "messages": MSGS, "max_tokens": 6, "stream": True}
        r = await _stream(client, gw.url + CHAT, body)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r.content)
        assert events[-1] == "[DONE]"
        assert all("usage" not in e for e in events[:-1])  # stripped: the client did not ask
        tokens = [e["choices"][0]["delta"].get("content") for e in events[:-1]]
        assert len([t for t in tokens if t]) == 6
        out = await gw.outcome(r.headers["x-request-id"])
    assert (out.status, out.stream, out.completion_tokens) == ("ok", True, 6)
    assert out.ttft_s is not None and out.tpot_s is not None and out.e2e_s >= out.ttft_s


async def test_a_completion_stream_with_usage_keeps_it(emulated: EmulatedFleet) -> None:
    async with running_gateway(instances=static_instances(emulated)) as gw, httpx.AsyncClient() as client:
        body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 4, "stream": True,
                "stream_options": {"include_usage": True}}  # fmt: skip
        r = await _stream(client, gw.url + "/v1/completions", body)
        events = _sse(r.content)
        usage = [e for e in events[:-1] if e.get("usage")]
        assert len(usage) == 1 and usage[0]["choices"] == [] and usage[0]["usage"]["completion_tokens"] == 4
        out = await gw.outcome(r.headers["x-request-id"])
    assert out.completion_tokens == 4 and out.status == "ok"


async def test_unknown_model_is_404_and_models_lists_and_retrieves_the_fleet(emulated: EmulatedFleet) -> None:
    async with running_gateway(instances=static_instances(emulated, max_model_len=4096)) as gw:
        async with httpx.AsyncClient() as client:
            r = await client.post(gw.url + CHAT, json={"model": "gpt-9", "messages": MSGS})
            models = (await client.get(gw.url + "/v1/models")).json()
            one = await client.get(gw.url + f"/v1/models/{MODEL}")
            missing = await client.get(gw.url + "/v1/models/meta-llama/gpt-9")  # a name may hold a slash
        assert r.status_code == 404
        assert r.json()["error"] == {
            "message": "The model `gpt-9` does not exist.", "type": "NotFoundError", "param": "model", "code": 404,
        }  # fmt: skip
        out = await gw.outcome(r.headers["x-request-id"])
        assert (out.status, out.http_status, out.instance_id) == ("error", 404, None)
        assert out.error_class == "model_not_found"
    assert [(m["id"], m["object"], m["max_model_len"]) for m in models["data"]] == [(MODEL, "model", 4096)]
    assert one.status_code == 200 and one.json() == models["data"][0]  # what openai's models.retrieve reads
    assert missing.status_code == 404
    assert missing.json()["error"] == {
        "message": "The model `meta-llama/gpt-9` does not exist.", "type": "NotFoundError", "param": "model",
        "code": 404,
    }  # fmt: skip


async def test_upstream_errors_are_passed_through(emulated: EmulatedFleet) -> None:
    instance = emulated.instances["a10g-0"]
    only = [i for i in static_instances(emulated) if i["instance_id"] == "a10g-0"]
    # fits the context as the router sees it (no max_tokens), not with vLLM's default of 16
    body = {"model": MODEL, "prompt": [i % 50_000 for i in range(instance.max_model_len - 5)]}
    async with running_gateway(instances=only) as gw, httpx.AsyncClient(timeout=30) as client:
        direct = await client.post(instance.url + "/v1/completions", json=body)
        r = await client.post(gw.url + "/v1/completions", json=body)
        assert direct.status_code == 400
        assert (r.status_code, r.content) == (direct.status_code, direct.content)
        assert "maximum context length" in r.json()["error"]["message"]
        out = await gw.outcome(r.headers["x-request-id"])
    assert (out.status, out.http_status, out.error_class, out.attempts) == ("error", 400, "upstream_400", 1)


async def test_a_request_that_fits_no_instance_is_refused_before_routing(emulated: EmulatedFleet) -> None:
    async with running_gateway(instances=static_instances(emulated, max_model_len=1000)) as gw:
        body = {"model": MODEL, "messages": MSGS, "max_completion_tokens": 990}
        async with httpx.AsyncClient() as client:
            r = await client.post(gw.url + CHAT, json=body)
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["param"] == "max_completion_tokens" and "maximum context length is 1000" in error["message"]


async def test_a_refused_connection_is_retried_on_another_instance(emulated: EmulatedFleet) -> None:
    live = static_instances(emulated)[0]
    instances = [{"instance_id": "a-dead", "url": dead_url(), "model": MODEL}, {**live, "instance_id": "b-live"}]
    # round-robin over the sorted candidates: the first decision takes a-dead
    async with running_gateway(instances=instances, fallback_profile="round-robin") as gw, httpx.AsyncClient() as c:
        r = await _stream(c, gw.url + CHAT, {"model": MODEL, "messages": MSGS, "max_tokens": 3, "stream": True})
        assert r.status_code == 200 and _sse(r.content)[-1] == "[DONE]"
        out = await gw.outcome(r.headers["x-request-id"])
        assert (out.status, out.instance_id, out.attempts) == ("ok", "b-live", 2)
        metrics = await gw.metrics()
    assert "lodestar_gateway_retries_total 1.0" in metrics
    assert 'lodestar_gateway_upstream_failures_total{kind="connect"} 1.0' in metrics


async def test_when_every_instance_refuses_the_client_gets_502(emulated: EmulatedFleet) -> None:
    instances = [{"instance_id": f"dead-{i}", "url": dead_url(), "model": MODEL} for i in range(3)]
    async with running_gateway(instances=instances, max_attempts=2) as gw, httpx.AsyncClient() as client:
        r = await client.post(gw.url + CHAT, json={"model": MODEL, "messages": MSGS, "stream": True})
        assert r.status_code == 502 and r.json()["error"]["type"] == "BadGatewayError"
        out = await gw.outcome(r.headers["x-request-id"])
    assert (out.attempts, out.error_class) == (2, "upstream_connect")


async def test_when_the_only_instance_refuses_the_client_gets_502() -> None:
    instances = [{"instance_id": "dead", "url": dead_url(), "model": MODEL}]
    async with running_gateway(instances=instances) as gw, httpx.AsyncClient() as client:
        r = await client.post(gw.url + CHAT, json={"model": MODEL, "messages": MSGS})
        assert r.status_code == 502 and "1 attempts; last: dead (connect)" in r.json()["error"]["message"]
        out = await gw.outcome(r.headers["x-request-id"])
    assert (out.attempts, out.error_class, out.instance_id) == (1, "upstream_connect", "dead")


async def test_no_instance_at_all_is_503() -> None:
    async with running_gateway() as gw, httpx.AsyncClient() as client:
        r = await client.post(gw.url + CHAT, json={"model": MODEL, "messages": MSGS})
        assert r.status_code == 503
        assert r.json()["error"]["type"] == "ServiceUnavailableError"
        metrics = await gw.metrics()
    assert 'lodestar_gateway_fallbacks_total{reason="no_router"} 1.0' in metrics


async def test_a_stream_broken_midway_ends_with_an_error_event(emulated: EmulatedFleet) -> None:
    for instance in emulated.instances.values():
        instance.faults.drop_streams(1.0)
    async with running_gateway(instances=static_instances(emulated)) as gw, httpx.AsyncClient() as client:
        r = await _stream(client, gw.url + CHAT, {"model": MODEL, "messages": MSGS, "max_tokens": 50, "stream": True})
        assert r.status_code == 200
        events = _sse(r.content)  # well-formed to the end
        assert events[-1] == "[DONE]"
        error = events[-2]["error"]
        assert (error["code"], error["type"]) == (502, "BadGatewayError")
        assert any(e.get("choices") for e in events[:-2])  # tokens came before the break
        out = await gw.outcome(r.headers["x-request-id"])
    assert (out.status, out.http_status, out.error_class) == ("error", 502, "upstream_disconnected")
    assert out.ttft_s is not None and 0 < out.completion_tokens < 50


async def test_no_first_token_in_time_is_504(emulated: EmulatedFleet) -> None:
    for instance in emulated.instances.values():
        instance.faults.stall(3.0)
    async with (
        running_gateway(instances=static_instances(emulated), first_token_timeout_s=0.3) as gw,
        httpx.AsyncClient() as client,
    ):
        r = await client.post(gw.url + CHAT, json={"model": MODEL, "messages": MSGS, "max_tokens": 3, "stream": True})
        assert r.status_code == 504 and r.headers["content-type"] == "application/json"
        assert "first_token_timeout" in r.json()["error"]["message"]
        out = await gw.outcome(r.headers["x-request-id"])
    assert (out.status, out.error_class) == ("error", "first_token_timeout")


async def test_a_client_that_leaves_cancels_the_upstream_request(emulated: EmulatedFleet) -> None:
    async with running_gateway(instances=static_instances(emulated)) as gw, httpx.AsyncClient() as client:
        body = {"model": MODEL, "messages": MSGS, "max_tokens": 4000, "stream": True}
        async with client.stream("POST", gw.url + CHAT, json=body) as r:
            rid = r.headers["x-request-id"]
            async for _ in r.aiter_bytes():
                break  # the first chunk arrived: leave
        out = await gw.outcome(rid)
        assert (out.status, out.http_status, out.error_class) == ("cancelled", 499, "client_disconnected")
        for _ in range(200):  # the instance aborted it
            if not any(True for i in emulated.instances.values() for _ in i.driver.active()):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the upstream request is still running")
        assert gw.core.proxy.inflight_requests == 0


async def test_body_limit_and_request_ids(emulated: EmulatedFleet) -> None:
    async with (
        running_gateway(instances=static_instances(emulated), max_body_bytes=2048) as gw,
        httpx.AsyncClient() as client,
    ):
        big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 4000}]}
        r = await client.post(gw.url + CHAT, json=big, headers={"x-request-id": "bad id with spaces"})
        assert r.status_code == 413 and r.json()["error"]["type"] == "RequestTooLargeError"
        assert r.headers["x-request-id"] != "bad id with spaces" and len(r.headers["x-request-id"]) == 32
        r = await client.post(gw.url + CHAT, content=b"{", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == 400
        r = await client.get(gw.url + "/v1/nothing")
        assert r.status_code == 404 and r.json()["error"]["type"] == "NotFoundError"
    assert gw.outcomes == []  # invalid requests are counted in metrics, not reported as outcomes


async def test_a_lone_surrogate_escape_is_a_400_not_a_500(emulated: EmulatedFleet) -> None:
    """``"\\ud800"`` is valid JSON syntax but no text: json.loads took it and the tokenizer
    failed (a 500 from the gateway and from the emulator). The gateway now refuses it; the
    emulated instance, behind it, tokenises it (the project tokenizer is total)."""
    body = (
        b'{"model": "%s", "max_tokens": 2, "messages": [{"role": "user", "content": "a \\ud800 b"}]}' % MODEL.encode()
    )
    headers = {"content-type": "application/json"}
    async with running_gateway(instances=static_instances(emulated)) as gw, httpx.AsyncClient() as client:
        r = await client.post(gw.url + CHAT, content=body, headers=headers)
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["type"] == "BadRequestError" and "not valid JSON" in error["message"], error
        direct = await client.post(static_instances(emulated)[0]["url"] + CHAT, content=body, headers=headers)
        assert direct.status_code == 200, direct.text
        # in the model's name the emulator's 404 quotes it: ASCII JSON (raw UTF-8 failed, a 500)
        unknown = body.replace(MODEL.encode(), b"\\ud800")
        direct = await client.post(static_instances(emulated)[0]["url"] + CHAT, content=unknown, headers=headers)
        assert direct.status_code == 404 and direct.content.isascii(), direct.text
        assert "\ud800" in direct.json()["error"]["message"]
    assert gw.outcomes == []


async def test_metrics_by_instance_policy_status_and_reason(emulated: EmulatedFleet) -> None:
    async with running_gateway(instances=static_instances(emulated)) as gw, httpx.AsyncClient() as client:
        r = await _stream(client, gw.url + CHAT, {"model": MODEL, "messages": MSGS, "max_tokens": 3, "stream": True})
        await gw.outcome(r.headers["x-request-id"])
        text = await gw.metrics()
    instance = (await gw.outcome(r.headers["x-request-id"])).instance_id
    assert f'lodestar_gateway_ttft_seconds_count{{instance="{instance}",policy="least-request"}} 1.0' in text
    assert f'lodestar_gateway_tpot_seconds_count{{instance="{instance}",policy="least-request"}} 1.0' in text
    assert 'lodestar_gateway_requests_total{code="200",endpoint="chat",status="ok"} 1.0' in text
    assert 'lodestar_gateway_fallbacks_total{reason="no_router"} 1.0' in text
