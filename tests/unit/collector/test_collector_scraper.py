"""The scraper against scripted engine endpoints on a real HTTP/1.1 server on 127.0.0.1 (one
listening socket; instance ``X`` is the URL prefix ``/X``): state contents, failure kinds,
health, model info, join/leave."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from tcp_server import tcp_server

from lodestar.http_client import HttpClient
from lodestar.localinfra.ports import free_port
from lodestar_collector.config import InstanceConfig
from lodestar_collector.metrics import CollectorMetrics
from lodestar_collector.scraper import MAX_PAGE_BYTES, UNKNOWN_MODEL, Scraper
from lodestar_schemas import InstanceState

TESTDATA = Path(__file__).resolve().parents[3] / "services" / "collector" / "testdata"
LOADED = (TESTDATA / "emulator_h100_loaded.txt").read_text()
MODELS = '{"object":"list","data":[{"id":"llama-3-8b","parent":null,"max_model_len":131072}]}'


def _metrics_text(hits: int, queries: int, running: int = 2) -> str:
    return (
        f'vllm:num_requests_running{{model_name="llama-3-8b"}} {running}\n'
        'vllm:num_requests_waiting{model_name="llama-3-8b"} 1\n'
        'vllm:kv_cache_usage_perc{model_name="llama-3-8b"} 0.25\n'
        f'vllm:prefix_cache_hits_total{{model_name="llama-3-8b"}} {hits}\n'
        f'vllm:prefix_cache_queries_total{{model_name="llama-3-8b"}} {queries}\n'
    )


#: An answer: status and body; or one of the two sentinels below.
Behaviour = tuple[int, bytes]
CLOSE: Behaviour = (0, b"")  # close the connection without answering (an engine going down)
HANG: Behaviour = (-1, b"")  # answer after 5 s, past any timeout here


def _text(body: str, status: int = 200) -> Behaviour:
    return (status, body.encode())


class Engines:
    """Scripted answers per instance (``metrics``/``models`` by instance name; unset: CLOSE) on a
    real socket server; ``calls`` counts requests per (instance, path)."""

    def __init__(self) -> None:
        self.metrics: dict[str, Behaviour] = {}
        self.models: dict[str, Behaviour] = {}
        self.calls: dict[tuple[str, str], int] = {}
        self.base_url = ""

    def url(self, host: str) -> str:
        return f"{self.base_url}/{host}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            host, _, path = target[1:].partition("/")
            path = f"/{path}"
            self.calls[(host, path)] = self.calls.get((host, path), 0) + 1
            table = self.metrics if path == "/metrics" else self.models
            status, body = table.get(host, CLOSE)
            if status == CLOSE[0]:
                return
            if status == HANG[0]:
                await asyncio.sleep(5)
                status, body = 200, b""
            writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
            await writer.drain()


@pytest.fixture
async def engines() -> AsyncIterator[Engines]:
    engines = Engines()
    async with tcp_server(engines.handle) as engines.base_url:
        yield engines


@pytest.fixture
def published() -> list[InstanceState]:
    return []


@pytest.fixture
async def client() -> AsyncIterator[HttpClient]:
    http = HttpClient(connect_timeout_s=0.05)
    try:
        yield http
    finally:
        await http.aclose()


@pytest.fixture
def scraper(client: HttpClient, published: list[InstanceState]) -> Scraper:
    return Scraper(client, published.append, CollectorMetrics(), interval_s=0.01, timeout_s=0.05, failure_threshold=3)


def _sample(scraper: Scraper, name: str, **labels: str) -> float | None:
    return scraper.metrics.registry.get_sample_value(name, labels)


def _inst(engines: Engines, ident: str = "a", **kw: str) -> InstanceConfig:
    return InstanceConfig(instance_id=ident, url=engines.url(ident), **kw)


async def test_success_state_from_a_captured_page(engines: Engines, scraper: Scraper) -> None:
    engines.metrics["a"] = _text(LOADED)
    engines.models["a"] = _text(MODELS)
    scraper.set_instances([_inst(engines, hardware="H100-SXM")])
    state = await scraper.scrape(scraper.targets["a"])
    assert state.model_dump(include={"instance_id", "url", "model", "hardware", "num_running", "num_waiting"}) == {
        "instance_id": "a",
        "url": engines.url("a"),
        "model": "llama-3-8b",
        "hardware": "H100-SXM",
        "num_running": 6,
        "num_waiting": 0,
    }
    assert state.kv_usage_frac == pytest.approx(0.0052694864903098035)
    assert (state.prefix_cache_hits_total, state.prefix_cache_queries_total) == (9600, 11220)
    assert (state.block_size, state.num_gpu_blocks, state.max_model_len) == (16, 28276, 131072)
    assert state.healthy and state.consecutive_failures == 0
    assert state.prefix_hit_rate is None  # first reading: no interval yet
    assert state.scrape_latency_s >= 0.0


async def test_hit_rate_is_the_delta_between_successful_scrapes(engines: Engines, scraper: Scraper) -> None:
    engines.models["a"] = _text(MODELS)
    scraper.set_instances([_inst(engines)])
    target = scraper.targets["a"]
    rates = []
    for hits, queries in [(100, 200), (130, 240), (130, 240), (None, None), (10, 20)]:
        if hits is None:
            engines.metrics["a"] = CLOSE  # a failed scrape in between is skipped over
        else:
            engines.metrics["a"] = _text(_metrics_text(hits, queries))
        rates.append((await scraper.scrape(target)).prefix_hit_rate)
    assert rates == [None, pytest.approx(0.75), None, None, pytest.approx(0.5)]  # last: counters reset


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        pytest.param(CLOSE, "connection", id="closed-unanswered"),
        pytest.param(_text("oops", 500), "http_status", id="http-500"),
        pytest.param(_text("<html>gateway</html>"), "parse", id="html"),
        pytest.param(_text('vllm:num_requests_running{model_name="m"} 1\n'), "parse", id="missing-metrics"),
        pytest.param(HANG, "timeout", id="timeout"),
    ],
)
async def test_failure_kinds_and_threshold(
    engines: Engines, scraper: Scraper, behaviour: Behaviour, reason: str
) -> None:
    engines.metrics["a"] = _text(_metrics_text(10, 20, running=4))
    engines.models["a"] = _text(MODELS)
    scraper.set_instances([_inst(engines)])
    target = scraper.targets["a"]
    await scraper.scrape(target)
    engines.metrics["a"] = behaviour
    states = [await scraper.scrape(target) for _ in range(4)]
    assert [(s.healthy, s.consecutive_failures) for s in states] == [(True, 1), (True, 2), (False, 3), (False, 4)]
    assert all(s.num_running == 4 and s.prefix_hit_rate is None for s in states)  # last good values
    assert _sample(scraper, "lodestar_collector_scrape_failures_total", instance="a", reason=reason) == 4


async def test_an_oversized_page_is_a_parse_failure_and_not_read_to_its_end(
    engines: Engines, client: HttpClient
) -> None:
    engines.metrics["a"] = (200, _metrics_text(1, 2).encode() + b"# padding\n" * (MAX_PAGE_BYTES // 10))
    engines.models["a"] = _text(MODELS)
    scraper = Scraper(client, [].append, CollectorMetrics(), interval_s=1.0, timeout_s=5.0, failure_threshold=3)
    scraper.set_instances([_inst(engines)])
    state = await scraper.scrape(scraper.targets["a"])
    assert (state.healthy, state.consecutive_failures) == (False, 1)
    assert _sample(scraper, "lodestar_collector_scrape_failures_total", instance="a", reason="parse") == 1


async def test_recovery_reads_models_again(engines: Engines, scraper: Scraper) -> None:
    engines.metrics["a"] = _text(_metrics_text(1, 2))
    engines.models["a"] = _text(MODELS)
    scraper.set_instances([_inst(engines)])
    target = scraper.targets["a"]
    await scraper.scrape(target)
    await scraper.scrape(target)
    assert engines.calls[("a", "/v1/models")] == 1  # once on join
    engines.metrics["a"] = CLOSE
    for _ in range(3):
        await scraper.scrape(target)
    engines.metrics["a"] = _text(_metrics_text(1, 2))
    engines.models["a"] = _text('{"data":[{"id":"llama-3-8b","max_model_len":8192}]}')
    state = await scraper.scrape(target)
    assert state.healthy and state.consecutive_failures == 0
    assert state.max_model_len == 8192
    assert engines.calls[("a", "/v1/models")] == 2


async def test_unreadable_models_is_retried_and_not_a_failure(engines: Engines, scraper: Scraper) -> None:
    engines.metrics["a"] = _text(_metrics_text(1, 2))
    engines.models["a"] = _text("nope", 404)
    scraper.set_instances([_inst(engines)])
    target = scraper.targets["a"]
    first = await scraper.scrape(target)
    assert first.healthy and first.max_model_len is None and first.model == "llama-3-8b"  # from the label
    engines.models["a"] = _text(MODELS)
    assert (await scraper.scrape(target)).max_model_len == 131072
    await scraper.scrape(target)
    assert engines.calls[("a", "/v1/models")] == 2


async def test_joining_instance_that_never_answers(engines: Engines, scraper: Scraper) -> None:
    refused = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    scraper.set_instances([InstanceConfig(instance_id="b", url=refused, model="from-config")])
    target = scraper.targets["b"]
    states = [await scraper.scrape(target) for _ in range(3)]
    assert [(s.healthy, s.consecutive_failures) for s in states] == [(False, 1), (False, 2), (False, 3)]
    assert _sample(scraper, "lodestar_collector_scrape_failures_total", instance="b", reason="connection") == 3
    assert states[-1].model == "from-config"
    assert (states[-1].num_running, states[-1].kv_usage_frac, states[-1].max_model_len) == (0, 0.0, None)
    scraper.set_instances([_inst(engines, "c")])
    assert (await scraper.scrape(scraper.targets["c"])).model == UNKNOWN_MODEL


async def test_config_model_wins(engines: Engines, scraper: Scraper) -> None:
    engines.metrics["a"] = _text(LOADED)
    engines.models["a"] = _text(MODELS)
    scraper.set_instances([_inst(engines, model="served-as")])
    assert (await scraper.scrape(scraper.targets["a"])).model == "served-as"


async def _until(cond: Callable[[], bool], timeout_s: float = 20.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if cond():
                return
            await asyncio.sleep(0.005)


async def test_loops_publish_and_instances_join_and_leave(
    engines: Engines, scraper: Scraper, published: list[InstanceState]
) -> None:
    for host in ("a", "b", "c"):
        engines.metrics[host] = _text(_metrics_text(1, 2))
        engines.models[host] = _text(MODELS)

    def count(ident: str) -> int:
        return sum(1 for s in published if s.instance_id == ident)

    scraper.set_instances([_inst(engines, "a"), _inst(engines, "b")])
    scraper.start()
    try:
        await _until(lambda: count("a") >= 3 and count("b") >= 3)
        scraper.set_instances([_inst(engines, "a"), _inst(engines, "c")])  # b leaves, c joins
        left_at = count("b")
        await _until(lambda: count("c") >= 3 and count("a") >= left_at + 6)
        assert count("b") == left_at
        assert _sample(scraper, "lodestar_collector_instances") == 2
        assert _sample(scraper, "lodestar_collector_scrapes_total", instance="b", outcome="ok") is None  # forgotten
        scraper.set_instances([InstanceConfig(instance_id="a", url=engines.url("c"))])  # a moved: a rejoin
        assert scraper.targets["a"].last is None
    finally:
        await scraper.stop()
    assert all(t.task is None for t in scraper.targets.values())


async def test_a_crashing_publish_does_not_end_the_loop(engines: Engines, client: HttpClient) -> None:
    engines.metrics["a"] = _text(_metrics_text(1, 2))
    engines.models["a"] = _text(MODELS)
    calls: list[InstanceState] = []

    def flaky(state: InstanceState) -> None:
        calls.append(state)
        if len(calls) == 1:
            raise RuntimeError("boom")

    scraper = Scraper(client, flaky, CollectorMetrics(), interval_s=0.01, timeout_s=0.05, failure_threshold=3)
    scraper.set_instances([_inst(engines)])
    scraper.start()
    try:
        await _until(lambda: len(calls) >= 3)
    finally:
        await scraper.stop()


async def test_overlong_model_label_is_not_used(engines: Engines, scraper: Scraper) -> None:
    engines.metrics["a"] = _text(_metrics_text(1, 2).replace("llama-3-8b", "x" * 300))
    scraper.set_instances([_inst(engines)])
    assert (await scraper.scrape(scraper.targets["a"])).model == UNKNOWN_MODEL
