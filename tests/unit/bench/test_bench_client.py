"""The request body and the open-loop sender against an in-process transport (no sockets):
what is sent, how each kind of failure is classified, and that nothing raises."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from lodestar.bench.client import ClientConfig, error_class, run_sends
from lodestar.bench.payload import BodyOptions, request_body, request_headers
from lodestar.bench.schedule import TimeScale, plan_sends
from lodestar.workload.request import Prompt, RequestSpec

REQUEST = RequestSpec("r7", arrival_s=0.0, prompt=Prompt(24), output_tokens=5, model="llama-3-8b")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param(
            BodyOptions(endpoint="completions"),
            {
                "model": "llama-3-8b",
                "prompt": "P",
                "max_tokens": 5,
                "min_tokens": 5,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            id="completions",
        ),
        pytest.param(
            BodyOptions(endpoint="chat", model="other"),
            {
                "model": "other",
                "messages": [{"role": "user", "content": "P"}],
                "max_tokens": 5,
                "min_tokens": 5,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            id="chat with a model override",
        ),
        pytest.param(
            BodyOptions(exact_length=False),
            {
                "model": "llama-3-8b",
                "prompt": "P",
                "max_tokens": 5,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
            id="without min_tokens/ignore_eos",
        ),
    ],
)
def test_request_body(options: BodyOptions, expected: dict[str, Any]) -> None:
    assert request_body(REQUEST, "P", options) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (None, {"x-request-id": "run1-r7"}),
        ("sk-1", {"x-request-id": "run1-r7", "authorization": "Bearer sk-1"}),
    ],
)
def test_request_headers(key: str | None, expected: dict[str, str]) -> None:
    assert request_headers(REQUEST, key, "run1") == expected


# --- the sender ---------------------------------------------------------------------------------


def sse_stream(n: int) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        yield b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
        for i in range(n):
            yield f'data: {{"choices":[{{"index":0,"delta":{{"content":" w{i}"}}}}]}}\n\n'.encode()
        yield f'data: {{"choices":[],"usage":{{"prompt_tokens":3,"completion_tokens":{n}}}}}\n\n'.encode()
        yield b"data: [DONE]\n\n"

    return gen()


class _Stream(httpx.AsyncByteStream):
    def __init__(self, it: AsyncIterator[bytes]) -> None:
        self.it = it

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.it:
            yield chunk


def handler(request: httpx.Request) -> httpx.Response:
    """Behaviour chosen by the request id: ok, 500, connect error, cut stream."""
    rid = request.headers["x-request-id"].split("-", 1)[1]
    body = json.loads(request.content)
    if rid == "fail500":
        return httpx.Response(500, json={"error": {"message": "fault", "type": "InternalServerError", "code": 500}})
    if rid == "refused":
        raise httpx.ConnectError("connection refused", request=request)
    if rid == "cut":

        async def cut() -> AsyncIterator[bytes]:
            yield b'data: {"choices":[{"index":0,"text":"a"}]}\n\n'
            raise httpx.RemoteProtocolError("peer closed connection", request=request)

        return httpx.Response(200, stream=_Stream(cut()))
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=_Stream(sse_stream(body["max_tokens"]))
    )


def spec(rid: str, t: float, out: int = 4) -> RequestSpec:
    return RequestSpec(rid, arrival_s=t, prompt=Prompt(20), output_tokens=out)


async def test_every_outcome_is_classified_and_nothing_raises() -> None:
    requests = [spec("ok", 0.0, 6), spec("fail500", 0.01), spec("refused", 0.02), spec("cut", 0.03)]
    sends = plan_sends(requests, ["http://x"], TimeScale(1.0))
    seen: list[str] = []

    class Observer:
        def on_sent(self, send: Any) -> None:
            seen.append("sent")

        def on_done(self, result: Any) -> None:
            seen.append("done")

    results, stats = await run_sends(
        sends, ClientConfig(api_key="k"), Observer(), transport=httpx.MockTransport(handler)
    )
    by_id = {r.send.request.request_id: r for r in results}
    ok = by_id["ok"].outcome
    assert (ok.error, ok.output_tokens, by_id["ok"].http_status) == (None, 6, 200)
    assert ok.ttft_s is not None and ok.tpot_s is not None and ok.e2e_s is not None
    assert (by_id["fail500"].outcome.error, by_id["fail500"].http_status) == ("http_500", 500)
    assert "fault" in (by_id["fail500"].outcome.detail or "")
    assert by_id["refused"].outcome.error == "connect"
    assert by_id["cut"].outcome.error == "incomplete"
    assert seen.count("sent") == seen.count("done") == 4
    assert stats.peak_in_flight >= 1 and stats.wall_s > 0


async def test_sends_are_spaced_by_the_time_scale() -> None:
    sends = plan_sends([spec("a", 0.0), spec("b", 0.05)], ["http://x"], TimeScale(2.0))
    results, _ = await run_sends(sends, ClientConfig(), transport=httpx.MockTransport(handler))
    gap = results[1].sent_wall_s - results[0].sent_wall_s
    assert gap >= 0.1 - 0.005  # never early


async def test_what_the_server_receives() -> None:
    received: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return handler(request)

    sends = plan_sends([spec("ok", 0.0, 3)], ["http://x:9"], TimeScale(1.0))
    config = ClientConfig(body=BodyOptions(endpoint="chat"), api_key="secret", run_id="abc")
    await run_sends(sends, config, transport=httpx.MockTransport(record))
    (request,) = received
    assert str(request.url) == "http://x:9/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer secret"
    assert request.headers["x-request-id"] == "abc-ok"
    body = json.loads(request.content)
    assert body["messages"][0]["content"] == spec("ok", 0.0).prompt.text()
    assert (body["max_tokens"], body["min_tokens"], body["ignore_eos"], body["stream"]) == (3, 3, True, True)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectError("x"), "connect"),
        (httpx.ConnectTimeout("x"), "connect_timeout"),
        (httpx.ReadTimeout("x"), "timeout"),
        (httpx.PoolTimeout("x"), "timeout"),
        (httpx.RemoteProtocolError("x"), "incomplete"),
        (httpx.ReadError("x"), "read_error"),
        (httpx.UnsupportedProtocol("x"), "bad_url"),
        (httpx.DecodingError("x"), "http_error"),
    ],
)
def test_error_class(exc: httpx.HTTPError, expected: str) -> None:
    assert error_class(exc) == expected
