"""Bodies rendered ahead: the same bytes inline or in a worker process, in order, never more
than the lookahead window in flight."""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from lodestar.bench.payload import BodyOptions
from lodestar.bench.render import AheadRenderer, render
from lodestar.bench.schedule import Send, TimeScale, plan_sends
from lodestar.workload.request import Prompt, RequestSpec


def sends(n: int = 12) -> list[Send]:
    requests = [
        RequestSpec(f"r{i}", arrival_s=0.1 * i, prompt=Prompt(40 + i, (1000 + i, 2000 + i), 32), output_tokens=3)
        for i in range(n)
    ]
    return plan_sends(requests, ["http://a", "http://b"], TimeScale(1.0))


def test_render_is_the_wire_format() -> None:
    (s,) = sends(1)
    r = render(s, BodyOptions(endpoint="completions"), "k", "run")
    body = json.loads(r.content)
    assert r.url == "http://a/v1/completions"
    assert body["prompt"] == s.request.prompt.text() and body["max_tokens"] == 3
    assert r.headers == {"x-request-id": "run-r0", "authorization": "Bearer k", "content-type": "application/json"}


@pytest.mark.parametrize("lookahead", [1, 4, 64])
async def test_inline_renders_in_order_within_the_window(lookahead: int) -> None:
    plan = sends()
    renderer = AheadRenderer(plan, BodyOptions(), None, "run", lookahead=lookahead)
    await renderer.fill()
    out = []
    for k in range(len(plan)):
        out.append(await renderer.take(k))
        assert len(renderer._pending) <= lookahead
    assert out == [render(s, BodyOptions(), None, "run") for s in plan]


async def test_a_worker_process_renders_the_same_bytes() -> None:
    plan = sends()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        renderer = AheadRenderer(plan, BodyOptions(endpoint="chat"), "k", "run", executor=pool, lookahead=3)
        await renderer.fill()
        out = [await renderer.take(k) for k in range(len(plan))]
    assert out == [render(s, BodyOptions(endpoint="chat"), "k", "run") for s in plan]
