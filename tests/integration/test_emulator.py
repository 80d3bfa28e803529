"""`lodestar emulate` as users run it: a real process on 127.0.0.1, spoken to with httpx and the
official openai client. Timing checks compare ratios of emulated (virtual-time) metrics or of
wall times between instances; none uses an absolute wall-clock threshold."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from lodestar import tokenizer
from lodestar.engine.profiles import instance_profile
from lodestar.localinfra.ports import free_port, free_port_block
from lodestar.localinfra.process import ManagedProcess
from lodestar.localinfra.settings import LocalInfraSettings

pytestmark = pytest.mark.integration

MODEL = "llama-3-8b"
H100_LEN = instance_profile("H100-SXM", MODEL).context_limit
A10G_LEN = instance_profile("A10G", MODEL).context_limit


# --- running the emulator --------------------------------------------------------------------


def _lodestar() -> list[str]:
    exe = Path(sys.executable).with_name("lodestar")
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from lodestar.cli.app import main; main()"]


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Emulator:
    proc: ManagedProcess
    urls: list[str]
    admin: str | None

    def ready(self) -> bool:
        return all(_healthy(u) for u in self.urls)


def _launch(
    infra: LocalInfraSettings, args: list[str], n: int, admin: bool = False, env: dict[str, str] | None = None
) -> Emulator:
    """Start ``lodestar emulate`` without waiting (several start-ups overlap)."""
    base = free_port_block(n)
    urls = [f"http://127.0.0.1:{base + k}" for k in range(n)]
    argv = [*_lodestar(), "emulate", *args, "--port", str(base)]
    admin_url = None
    if admin:
        admin_port = free_port()
        argv += ["--admin-port", str(admin_port)]
        admin_url = f"http://127.0.0.1:{admin_port}"
    proc = ManagedProcess(
        name=f"test-emulator-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        argv=argv,
        run_dir=infra.run_dir,
        log_dir=infra.log_dir,
        env=env,
    )
    proc.start()
    return Emulator(proc, urls, admin_url)


@dataclass
class BusyPortRun:
    """``lodestar emulate`` pointed at a port this test process holds."""

    port: int
    proc: subprocess.Popen[str]
    holder: socket.socket


@pytest.fixture(scope="module")
def emulators(
    local_infra: LocalInfraSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Emulator]]:
    """Every emulator process of this module, started at once (start-up is mostly imports):

    - ``fleet``: mini-hetero2 (H100 then A10G) at time scale 1, with the control port;
    - ``small``: two H100s at time scale 2 — ``busy`` runs at most 2 sequences, ``faulty`` takes
      faults — reporting cached tokens in usage (env setting), with the control port;
    - ``solo``: one instance from ``--hardware``.
    """
    path = tmp_path_factory.mktemp("cluster") / "small.yaml"
    path.write_text(
        "name: test-small\nmodel: llama-3-8b\ngroups:\n"
        "  - hardware: H100-SXM\n    ids: [busy]\n    engine_args: {max_num_seqs: 2}\n"
        "  - hardware: H100-SXM\n    ids: [faulty]\n"
    )
    details = {"LODESTAR_EMULATOR_ENABLE_PROMPT_TOKENS_DETAILS": "true"}
    launched = {
        "fleet": _launch(local_infra, ["--cluster", "mini-hetero2", "--default-max-tokens", "8"], 2, admin=True),
        "small": _launch(local_infra, ["--cluster", str(path), "--time-scale", "2"], 2, admin=True, env=details),
        "solo": _launch(local_infra, ["--hardware", "A10G", "--model", MODEL, "--instance-id", "solo"], 1),
    }
    try:
        deadline = time.monotonic() + 60
        while not all(e.ready() for e in launched.values()):
            dead = [k for k, e in launched.items() if not e.proc.is_running()]
            assert not dead and time.monotonic() < deadline, {k: launched[k].proc.log_tail() for k in launched}
            time.sleep(0.1)
        yield launched
    finally:
        with ThreadPoolExecutor() as pool:  # SIGTERM them all at once
            list(pool.map(lambda e: e.proc.stop(), launched.values()))


@pytest.fixture(scope="module")
def busy_port_run() -> Iterator[BusyPortRun]:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    proc = subprocess.Popen(
        [*_lodestar(), "emulate", "--hardware", "A10G", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield BusyPortRun(port, proc, holder)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        holder.close()


@pytest.fixture(scope="module")
def fleet(emulators: dict[str, Emulator], busy_port_run: BusyPortRun) -> Emulator:
    return emulators["fleet"]  # (busy_port_run: its start-up overlaps with the others')


@pytest.fixture(scope="module")
def small(emulators: dict[str, Emulator]) -> Emulator:
    return emulators["small"]


# --- metrics ---------------------------------------------------------------------------------


def scrape(url: str) -> list[Sample]:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def metric(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def delta(before: list[Sample], after: list[Sample], name: str, **labels: str) -> float:
    return metric(after, name, **labels) - metric(before, name, **labels)


def mean_delta(before: list[Sample], after: list[Sample], histogram: str) -> float:
    n = delta(before, after, f"{histogram}_count")
    assert n > 0, histogram
    return delta(before, after, f"{histogram}_sum") / n


def _chat(url: str, body: dict[str, Any], timeout: float = 30.0) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=timeout)


def _words(n: int) -> str:
    return tokenizer.synthesize(n, seed=uuid.uuid4().int & 0xFFFFFFFF)


# --- serving ---------------------------------------------------------------------------------


def test_fleet_serves_every_instance_on_consecutive_ports(fleet: Emulator) -> None:
    h100, a10g = fleet.urls
    for url, hardware, length in ((h100, "H100-SXM", H100_LEN), (a10g, "A10G", A10G_LEN)):
        models = httpx.get(f"{url}/v1/models").json()
        assert models["object"] == "list"
        assert [(m["id"], m["max_model_len"]) for m in models["data"]] == [(MODEL, length)]
        assert metric(scrape(url), "lodestar_emulator_info", hardware=hardware) == 1
    listed = httpx.get(f"{fleet.admin}/admin/instances").json()
    assert [(i["instance_id"], i["url"]) for i in listed] == [("h100-sxm-0", h100), ("a10g-0", a10g)]
    log = fleet.proc.log_tail()
    assert h100 in log and a10g in log


def test_openai_client_chat_and_completions(fleet: Emulator) -> None:
    client = openai.OpenAI(base_url=f"{fleet.urls[0]}/v1", api_key="unused", max_retries=0)
    messages: list[Any] = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Name three prime numbers."},
    ]
    rendered = tokenizer.count_tokens(tokenizer.render_chat(messages))

    chat = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=7)
    assert chat.usage is not None
    assert (chat.usage.prompt_tokens, chat.usage.completion_tokens, chat.usage.total_tokens) == (
        rendered,
        7,
        rendered + 7,
    )
    assert tokenizer.count_tokens(chat.choices[0].message.content or "") == 7
    assert chat.choices[0].finish_reason == "length"

    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_completion_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    content = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content) == 5
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (rendered, 5)

    default = client.chat.completions.create(model=MODEL, messages=messages)  # --default-max-tokens 8
    assert default.usage is not None and default.usage.completion_tokens == 8

    prompt = "Once upon a time, in a land far away,"
    comp = client.completions.create(model=MODEL, prompt=prompt, max_tokens=6)
    assert comp.usage is not None
    assert (comp.usage.prompt_tokens, comp.usage.completion_tokens) == (tokenizer.count_tokens(prompt), 6)
    assert tokenizer.count_tokens(comp.choices[0].text) == 6
    streamed = [
        c.choices[0].text for c in client.completions.create(model=MODEL, prompt=prompt, stream=True, max_tokens=4)
    ]
    assert len(streamed) == 4
    by_ids = client.completions.create(model=MODEL, prompt=list(range(40)), max_tokens=2)
    assert by_ids.usage is not None and by_ids.usage.prompt_tokens == 40
    vllm_default = client.completions.create(model=MODEL, prompt=prompt)
    assert vllm_default.usage is not None and vllm_default.usage.completion_tokens == 16


def test_sse_wire_format(fleet: Emulator) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True}
    with httpx.stream("POST", f"{fleet.urls[1]}/v1/chat/completions", json=body, timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        raw = resp.read().decode()
    events = raw.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    payloads = [e.removeprefix("data: ") for e in events[:-2]]
    assert all(e.startswith("data: {") for e in events[:-2])
    assert len(payloads) == 1 + 3  # the assistant-role chunk, then one chunk per token
    assert '"finish_reason":"length"' in payloads[-1]


def test_x_request_id_names_the_response(fleet: Emulator) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    first = httpx.post(f"{fleet.urls[0]}/v1/chat/completions", json=body, headers={"X-Request-Id": "abc-1"})
    again = httpx.post(f"{fleet.urls[0]}/v1/chat/completions", json=body, headers={"X-Request-Id": "abc-1"})
    assert first.json()["id"] == again.json()["id"] == "chatcmpl-abc-1"
    assert first.json()["choices"][0]["message"]["content"] == again.json()["choices"][0]["message"]["content"]


def test_client_disconnect_aborts_the_request_in_the_engine(fleet: Emulator) -> None:
    url = fleet.urls[1]  # A10G: 400 tokens take many seconds
    before = scrape(url)
    body = {"messages": [{"role": "user", "content": "tell me everything"}], "max_tokens": 400, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as resp:
        lines = resp.iter_lines()
        assert sum(1 for line, _ in zip(lines, range(6), strict=False) if line.startswith("data: {")) >= 2
    with pytest.raises(httpx.ReadTimeout):  # a non-streamed request whose client gives up
        httpx.post(f"{url}/v1/chat/completions", json={**body, "stream": False}, timeout=0.3)
    for _ in range(100):
        after = scrape(url)
        if delta(before, after, "vllm:request_success_total", finished_reason="abort") == 2:
            break
    assert delta(before, after, "vllm:request_success_total", finished_reason="abort") == 2
    assert metric(after, "vllm:num_requests_running") == 0
    assert delta(before, after, "vllm:request_success_total", finished_reason="length") == 0


@pytest.mark.parametrize(
    ("path", "body", "status", "param"),
    [
        ("/v1/chat/completions", {"model": MODEL}, 400, "messages"),
        ("/v1/chat/completions", {"messages": "hello"}, 400, "messages"),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": -5}, 400, "max_tokens"),
        ("/v1/chat/completions", "{not json", 400, None),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 3}, 400, None),
        ("/v1/chat/completions", {"messages": [{"role": "u", "content": "x"}], "stream_options": {}}, 400, None),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "model": "gpt-9"}, 404, "model"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "max_tokens": 10**6},
            400,
            "max_tokens",
        ),
        ("/v1/completions", {"max_tokens": 2}, 400, "prompt"),
        ("/v1/completions", {"prompt": ["a", "b"]}, 400, "prompt"),
        ("/v1/completions", {"prompt": ""}, 400, "prompt"),
        ("/admin/fault", {"kind": "fail", "fraction": 2}, 400, "fail.fraction"),
        ("/admin/fault", "{not json", 400, None),
    ],
)
def test_invalid_requests_get_openai_error_bodies(
    fleet: Emulator, path: str, body: Any, status: int, param: str | None
) -> None:
    url = f"{fleet.urls[0]}{path}"
    if isinstance(body, str):
        resp = httpx.post(url, content=body, headers={"content-type": "application/json"})
    else:
        resp = httpx.post(url, json=body)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == status
    assert error["type"] == ("NotFoundError" if status == 404 else "BadRequestError")
    if param is not None:
        assert error["param"] == param


def test_requests_that_do_not_fit_the_context_are_400(fleet: Emulator) -> None:
    a10g = fleet.urls[1]
    huge = " x" * (A10G_LEN + 5)
    resp = httpx.post(f"{a10g}/v1/completions", json={"prompt": huge, "max_tokens": None}, timeout=30)
    assert resp.status_code == 400
    assert f"maximum context length is {A10G_LEN} tokens" in resp.json()["error"]["message"]
    near = " x" * (A10G_LEN - 10)
    resp = httpx.post(f"{a10g}/v1/completions", json={"prompt": near, "max_tokens": 11}, timeout=30)
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "max_tokens"
    assert "(30982 in the messages, 11 in the completion)" in resp.json()["error"]["message"]


# --- metrics under load ----------------------------------------------------------------------


async def test_metrics_move_under_load(small: Emulator) -> None:
    busy = small.urls[0]
    before = scrape(busy)
    prompt = {"role": "user", "content": _words(40)}
    n, out = 6, 24
    seen = {"running": 0.0, "waiting": 0.0, "kv": 0.0}

    async def one(client: httpx.AsyncClient) -> int:
        body = {"messages": [prompt], "max_tokens": out, "stream": True}
        async with client.stream("POST", f"{busy}/v1/chat/completions", json=body) as resp:
            return len([line async for line in resp.aiter_lines() if line.startswith('data: {"id"')])

    async def watch(client: httpx.AsyncClient, stop: asyncio.Event) -> None:
        while not stop.is_set():
            text = (await client.get(f"{busy}/metrics")).text
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    if s.name == "vllm:num_requests_running":
                        seen["running"] = max(seen["running"], s.value)
                    elif s.name == "vllm:num_requests_waiting":
                        seen["waiting"] = max(seen["waiting"], s.value)
                    elif s.name == "vllm:kv_cache_usage_perc":
                        seen["kv"] = max(seen["kv"], s.value)
            await asyncio.sleep(0.02)

    async with httpx.AsyncClient(timeout=60) as client:
        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(client, stop))
        counts = await asyncio.gather(*(one(client) for _ in range(n)))
        stop.set()
        await watcher
    after = scrape(busy)
    assert counts == [out + 1] * n  # role chunk + one per token
    assert seen["running"] == 2  # max_num_seqs: 2
    assert seen["waiting"] >= 1
    assert seen["kv"] > 0
    assert metric(after, "vllm:num_requests_running") == 0 and metric(after, "vllm:num_requests_waiting") == 0
    p = tokenizer.count_tokens(tokenizer.render_chat([prompt]))
    assert delta(before, after, "vllm:request_success_total", finished_reason="length") == n
    assert delta(before, after, "vllm:generation_tokens_total") == n * out
    assert delta(before, after, "vllm:prompt_tokens_total") == n * p
    assert delta(before, after, "vllm:time_to_first_token_seconds_count") == n
    assert delta(before, after, "vllm:inter_token_latency_seconds_count") == n * (out - 1)
    assert delta(before, after, "vllm:e2e_request_latency_seconds_count") == n
    # The four that waited for a slot queued for at least one other request's decode.
    assert mean_delta(before, after, "vllm:request_queue_time_seconds") > mean_delta(
        before, after, "vllm:request_prefill_time_seconds"
    )


def test_a_prefix_sharing_pair_hits_the_prefix_cache(small: Emulator) -> None:
    url = small.urls[0]
    system = {"role": "system", "content": _words(300)}
    before = scrape(url)
    first = _chat(url, {"messages": [system, {"role": "user", "content": "first question"}], "max_tokens": 2})
    second = _chat(url, {"messages": [system, {"role": "user", "content": "another one"}], "max_tokens": 2})
    after = scrape(url)
    hits = delta(before, after, "vllm:prefix_cache_hits_total")
    assert hits >= 288  # every full 16-token block of the 300-word shared system prompt
    assert delta(before, after, "vllm:prefix_cache_queries_total") == (
        first.json()["usage"]["prompt_tokens"] + second.json()["usage"]["prompt_tokens"]
    )
    # LODESTAR_EMULATOR_ENABLE_PROMPT_TOKENS_DETAILS: cached tokens reported as vLLM does.
    assert first.json()["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    assert second.json()["usage"]["prompt_tokens_details"] == {"cached_tokens": hits}


def test_the_same_request_is_faster_on_h100_than_on_a10g(fleet: Emulator) -> None:
    prompt = _words(1000)
    ttft, wall = {}, {}
    for name, url in zip(("h100", "a10g"), fleet.urls, strict=True):
        before = scrape(url)
        resp = httpx.post(f"{url}/v1/completions", json={"prompt": prompt, "max_tokens": 4}, timeout=30)
        assert resp.status_code == 200
        wall[name] = resp.elapsed.total_seconds()
        ttft[name] = mean_delta(before, scrape(url), "vllm:time_to_first_token_seconds")
    assert ttft["a10g"] > 3 * ttft["h100"]  # the model says ~13x (prefill is compute-bound)
    assert wall["a10g"] > 2 * wall["h100"]


def test_time_scale_stretches_wall_time_but_metrics_stay_emulated(fleet: Emulator, small: Emulator) -> None:
    """The same work on an H100 at time scale 1 (fleet) and 2 (small.faulty)."""
    e2e, wall = {}, {}
    for scale, url in ((1, fleet.urls[0]), (2, small.urls[1])):
        before = scrape(url)
        resp = httpx.post(f"{url}/v1/completions", json={"prompt": _words(200), "max_tokens": 24}, timeout=30)
        assert resp.status_code == 200
        wall[scale] = resp.elapsed.total_seconds()
        e2e[scale] = mean_delta(before, scrape(url), "vllm:e2e_request_latency_seconds")
    assert 0.8 < e2e[2] / e2e[1] < 1.25
    assert wall[2] / wall[1] > 1.5


# --- faults ----------------------------------------------------------------------------------


@pytest.fixture
def faulty(small: Emulator) -> Iterator[str]:
    url = small.urls[1]
    yield url
    if _healthy(url):
        httpx.delete(f"{url}/admin/fault")
    else:  # gone: only the control port can bring it back
        httpx.delete(f"{small.admin}/admin/instances/faulty/fault")


def _fault(url: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(f"{url}/admin/fault", json=body)
    assert resp.status_code == 200, resp.text
    status: dict[str, Any] = resp.json()
    return status


def _timed(url: str, max_tokens: int) -> tuple[list[Sample], list[Sample]]:
    before = scrape(url)
    assert (
        _chat(url, {"messages": [{"role": "user", "content": _words(30)}], "max_tokens": max_tokens}).status_code == 200
    )
    return before, scrape(url)


def test_slowdown_shows_in_emulated_token_times(faulty: str) -> None:
    base = mean_delta(*_timed(faulty, 12), "vllm:request_time_per_output_token_seconds")
    assert _fault(faulty, {"kind": "slowdown", "factor": 3})["speed_factor"] == 3
    slow = mean_delta(*_timed(faulty, 12), "vllm:request_time_per_output_token_seconds")
    assert slow > 2.5 * base
    httpx.delete(f"{faulty}/admin/fault")
    restored = mean_delta(*_timed(faulty, 12), "vllm:request_time_per_output_token_seconds")
    assert restored < 1.2 * base


def test_stall_holds_the_next_first_token(faulty: str) -> None:
    base = mean_delta(*_timed(faulty, 2), "vllm:time_to_first_token_seconds")
    status = _fault(faulty, {"kind": "stall", "duration_s": 0.4})
    assert status["stalled_until_s"] is not None
    stalled = mean_delta(*_timed(faulty, 2), "vllm:time_to_first_token_seconds")
    assert stalled > 5 * base


def test_fail_fraction_answers_500_with_an_openai_body(faulty: str) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 1}
    before = scrape(faulty)
    _fault(faulty, {"kind": "fail", "fraction": 1.0})
    for _ in range(3):
        resp = _chat(faulty, body)
        assert resp.status_code == 500
        assert resp.json()["error"]["type"] == "InternalServerError"
        assert resp.json()["error"]["code"] == 500
    _fault(faulty, {"kind": "fail", "fraction": 0.5})
    codes = [_chat(faulty, body).status_code for _ in range(16)]
    assert set(codes) == {200, 500}
    failed = 3 + codes.count(500)
    assert delta(before, scrape(faulty), "lodestar_emulator_injected_failures_total") == failed
    httpx.delete(f"{faulty}/admin/fault")
    assert _chat(faulty, body).status_code == 200


def test_drop_cuts_streams_mid_way(faulty: str) -> None:
    before = scrape(faulty)
    _fault(faulty, {"kind": "drop", "fraction": 1.0})
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 20, "stream": True}
    for _ in range(3):
        tokens = 0
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream("POST", f"{faulty}/v1/chat/completions", json=body, timeout=30) as resp,
        ):
            assert resp.status_code == 200
            for line in resp.iter_lines():
                assert line != "data: [DONE]"
                if '"content":" ' in line:
                    tokens += 1
        assert 1 <= tokens < 20
    whole = _chat(faulty, {"messages": [{"role": "user", "content": "x"}], "max_tokens": 5})
    assert whole.status_code == 200  # only streams are dropped
    after = scrape(faulty)
    assert delta(before, after, "lodestar_emulator_dropped_streams_total") == 3
    assert delta(before, after, "vllm:request_success_total", finished_reason="abort") == 3
    assert metric(after, "vllm:num_requests_running") == 0


async def test_go_away_refuses_connections_and_comes_back(faulty: str, small: Emulator) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 400, "stream": True}
    control = f"{small.admin}/admin/instances/faulty/fault"

    async def healthy(client: httpx.AsyncClient) -> bool:
        try:
            return (await client.get(f"{faulty}/health")).status_code == 200
        except httpx.HTTPError:
            return False

    async def refused() -> bool:
        """A new connection is refused (a pooled keep-alive one may instead see its close)."""
        async with httpx.AsyncClient(timeout=5) as fresh:
            try:
                await fresh.get(f"{faulty}/health")
            except httpx.ConnectError:
                return True
        return False

    async with httpx.AsyncClient(timeout=30) as client:
        streaming = asyncio.Event()

        async def in_flight() -> int:
            tokens = 0
            with pytest.raises(httpx.RemoteProtocolError):
                async with client.stream("POST", f"{faulty}/v1/chat/completions", json=body) as resp:
                    async for line in resp.aiter_lines():
                        tokens += line.startswith("data: {")
                        if tokens:
                            streaming.set()
            return tokens

        async def both_in_the_engine() -> None:
            """Wait (no fixed sleep) until the stream has tokens and the other request runs."""
            await asyncio.wait_for(streaming.wait(), 30)
            for _ in range(600):
                samples = await asyncio.to_thread(scrape, faulty)
                if metric(samples, "vllm:num_requests_running") + metric(samples, "vllm:num_requests_waiting") >= 2:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("the two requests never reached the engine")

        async def whole_in_flight() -> None:
            with pytest.raises(httpx.RemoteProtocolError):  # status line, then the connection closes
                async with httpx.AsyncClient(timeout=30) as other:
                    await other.post(f"{faulty}/v1/chat/completions", json={**body, "stream": False})

        stream = asyncio.create_task(in_flight())
        whole = asyncio.create_task(whole_in_flight())
        await both_in_the_engine()
        status = (await client.post(f"{faulty}/admin/fault", json={"kind": "go_away", "duration_s": 0.5})).json()
        assert status["gone"] is True and "go_away" in status["ends_s"]
        assert 0 < await stream < 401  # the connections in flight were dropped
        await whole
        assert await refused()
        for _ in range(100):  # back after 0.5 emulated s = 1 wall s at time scale 2
            if await healthy(client):
                break
            await asyncio.sleep(0.05)
        assert (await client.get(f"{faulty}/admin/fault")).json()["gone"] is False

        # Without a duration it stays away until restored through the fleet's control port.
        assert (await client.post(control, json={"kind": "go_away"})).json()["gone"] is True
        assert await refused()
        with pytest.raises(httpx.TransportError):  # the pooled connection was closed too
            await client.get(f"{faulty}/health")
        assert (await client.get(control)).json()["gone"] is True
        assert (await client.delete(control)).json()["gone"] is False
        assert await healthy(client)
        unknown = await client.post(f"{small.admin}/admin/instances/nope/fault", json={"kind": "restore"})
        assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "instance_id"


# --- the command -----------------------------------------------------------------------------


def test_a_busy_port_fails_with_a_message_not_a_traceback(busy_port_run: BusyPortRun) -> None:
    out, err = busy_port_run.proc.communicate(timeout=60)
    assert busy_port_run.proc.returncode == 1
    assert f"port {busy_port_run.port} on 127.0.0.1 is already in use" in err
    assert "Traceback" not in out + err


def test_single_instance_serves_and_stops_cleanly_on_sigterm(emulators: dict[str, Emulator]) -> None:
    solo = emulators["solo"]
    url = solo.urls[0]
    assert httpx.get(f"{url}/v1/models").json()["data"][0]["max_model_len"] == A10G_LEN
    assert metric(scrape(url), "lodestar_emulator_info", instance_id="solo", hardware="A10G") == 1
    assert solo.proc.stop()  # SIGTERM
    assert not solo.proc.is_running()
    log = solo.proc.log_tail()
    assert "emulator stopped" in log
    assert "Traceback" not in log
