"""Scrape every instance's ``/metrics`` on a fixed cadence and publish one ``InstanceState`` each time.

Each instance has its own asyncio task (all sharing one keep-alive
:class:`~lodestar.http_client.HttpClient`, the gateway's), so a slow or dead instance never
delays the others. A task ticks every ``interval_s`` on a fixed
schedule (missed ticks are skipped, never bunched), scrapes with an overall ``timeout_s``
deadline, updates the instance's :class:`~lodestar_collector.health.HealthTracker`, and hands
the state to ``publish`` (non-blocking: :meth:`BufferedPublisher.publish`).

What a state carries:

- after a successful scrape: the fresh snapshot; ``prefix_hit_rate`` = Δhits/Δqueries since the
  previous successful scrape (SGLang without prefix counters: its ``cache_hit_rate`` gauge);
- after a failed one: the last good values (zeros if there are none), ``prefix_hit_rate`` None,
  ``consecutive_failures`` ≥ 1, and ``healthy`` as the tracker says (still True below the
  threshold for an instance that was healthy; False while joining or once unhealthy);
- ``model``: the config's ``model``, else ``/v1/models``, else the metrics' ``model_name`` label;
  ``max_model_len`` from ``/v1/models``, read on join and again after the instance was unhealthy.

Instances join and leave through :meth:`Scraper.set_instances` (a changed URL, model or
hardware is a leave plus a join). Event-loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import structlog

from lodestar.http_client import HttpClient, HttpError
from lodestar_collector.config import InstanceConfig
from lodestar_collector.health import HealthTracker, Transition
from lodestar_collector.hitrate import PrefixCounters, counters_of, prefix_hit_rate
from lodestar_collector.metrics import CollectorMetrics
from lodestar_collector.models_api import ModelInfo, ModelInfoError, parse_models
from lodestar_collector.parse import MetricsParseError, MetricsSnapshot, parse_metrics
from lodestar_schemas import InstanceState

log = structlog.get_logger(__name__)

FailureReason = Literal["timeout", "connection", "http_status", "parse"]
UNKNOWN_MODEL = "unknown"
_MAX_MODEL_LEN = 256  # InstanceState.model's limit
#: A larger answer is not an engine's metrics page (vLLM's is ~30 KB) and is not read to its end.
MAX_PAGE_BYTES = 8 << 20


class ScrapeFailure(Exception):
    """One scrape produced no snapshot."""

    def __init__(self, reason: FailureReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass
class InstanceTarget:
    """Everything the collector knows about one instance."""

    config: InstanceConfig
    health: HealthTracker
    last: MetricsSnapshot | None = None
    counters: PrefixCounters | None = None
    model_info: ModelInfo | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def instance_id(self) -> str:
        ident: str = self.config.instance_id
        return ident


class Scraper:
    """Owns the scrape tasks. :meth:`start` inside the loop, :meth:`stop` to end them."""

    def __init__(
        self,
        client: HttpClient,
        publish: Callable[[InstanceState], object],
        metrics: CollectorMetrics,
        interval_s: float,
        timeout_s: float,
        failure_threshold: int,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.client = client
        self.publish = publish
        self.metrics = metrics
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.failure_threshold = failure_threshold
        self.clock = clock
        self.targets: dict[str, InstanceTarget] = {}
        self._running = False

    # --- membership ---------------------------------------------------------------------------

    def set_instances(self, configs: Sequence[InstanceConfig]) -> None:
        """Reconcile with ``configs``: start new instances, stop removed or changed ones."""
        wanted = {c.instance_id: c for c in configs}
        for ident in list(self.targets):
            if ident not in wanted or wanted[ident] != self.targets[ident].config:
                self._remove(ident)
        for ident, config in wanted.items():
            if ident not in self.targets:
                self._add(config)
        self._update_gauges()

    def _add(self, config: InstanceConfig) -> None:
        target = InstanceTarget(config, HealthTracker(self.failure_threshold))
        self.targets[config.instance_id] = target
        log.info("instance_joined", instance=config.instance_id, url=config.url)
        if self._running:
            target.task = asyncio.create_task(self._loop(target), name=f"scrape-{config.instance_id}")

    def _remove(self, ident: str) -> None:
        target = self.targets.pop(ident)
        if target.task is not None:
            target.task.cancel()
        self.metrics.forget(ident)
        log.info("instance_left", instance=ident, url=target.config.url)

    def _update_gauges(self) -> None:
        self.metrics.instances.set(len(self.targets))
        self.metrics.healthy.set(sum(1 for t in self.targets.values() if t.health.healthy))

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._running = True
        for target in self.targets.values():
            if target.task is None:
                target.task = asyncio.create_task(self._loop(target), name=f"scrape-{target.instance_id}")

    async def stop(self) -> None:
        self._running = False
        tasks = [t.task for t in self.targets.values() if t.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for target in self.targets.values():
            target.task = None

    async def _loop(self, target: InstanceTarget) -> None:
        loop = asyncio.get_running_loop()
        # Spread instances over the interval so a large fleet is not scraped in one burst.
        offset = (zlib.crc32(target.instance_id.encode()) % 1000) / 1000 * self.interval_s
        next_at = loop.time() + offset
        await asyncio.sleep(offset)
        while True:
            self.metrics.loop_lag.observe(max(0.0, loop.time() - next_at))
            try:
                self.publish(await self.scrape(target))
            except Exception:  # a bug must not silently end this instance's scraping
                log.exception("scrape_crashed", instance=target.instance_id)
            next_at += self.interval_s
            now = loop.time()
            if next_at < now:
                next_at += math.ceil((now - next_at) / self.interval_s) * self.interval_s
            await asyncio.sleep(next_at - now)

    # --- one scrape ---------------------------------------------------------------------------

    async def scrape(self, target: InstanceTarget) -> InstanceState:
        """Scrape ``target`` once and return its state (publishing is the caller's)."""
        ident = target.instance_id
        start = self.clock()
        try:
            snapshot = await self._fetch(target)
        except ScrapeFailure as failure:
            elapsed = self.clock() - start
            self._on_failure(target, failure)
            return self._state(target, target.last, None, elapsed)
        elapsed = self.clock() - start
        self.metrics.scrapes.labels(ident, "ok").inc()
        self.metrics.latency.labels(ident).observe(elapsed)
        if target.health.success() is Transition.BECAME_HEALTHY:
            log.info("instance_healthy", instance=ident, url=target.config.url)
            self._update_gauges()
        counters = counters_of(snapshot.prefix_cache_hits_total, snapshot.prefix_cache_queries_total)
        rate = prefix_hit_rate(target.counters, counters) if counters is not None else snapshot.prefix_hit_rate_gauge
        target.counters = counters
        target.last = snapshot
        if target.health.needs_model_info:
            await self._read_models(target)
        return self._state(target, snapshot, rate, elapsed)

    async def _get(self, url: str) -> tuple[int, bytes]:
        """Status and body (at most :data:`MAX_PAGE_BYTES` + a read) of one GET within
        ``timeout_s``; TimeoutError or :class:`~lodestar.http_client.HttpError` otherwise."""
        async with asyncio.timeout(self.timeout_s):
            response = await self.client.request("GET", url)
            try:
                return response.status, await response.read(MAX_PAGE_BYTES)
            finally:
                response.close()

    async def _fetch(self, target: InstanceTarget) -> MetricsSnapshot:
        try:
            status, body = await self._get(f"{target.config.url}/metrics")
        except TimeoutError:
            raise ScrapeFailure("timeout", f"no answer within {self.timeout_s:g}s") from None
        except HttpError as exc:
            raise ScrapeFailure("connection", f"{type(exc).__name__}: {exc}") from None
        if status != 200:
            raise ScrapeFailure("http_status", f"HTTP {status}")
        if len(body) >= MAX_PAGE_BYTES:
            raise ScrapeFailure("parse", f"metrics page of {MAX_PAGE_BYTES >> 20} MiB or more (not read to its end)")
        try:
            return parse_metrics(body.decode("utf-8", errors="replace"))
        except MetricsParseError as exc:
            raise ScrapeFailure("parse", str(exc)) from None

    def _on_failure(self, target: InstanceTarget, failure: ScrapeFailure) -> None:
        ident = target.instance_id
        self.metrics.scrapes.labels(ident, "failed").inc()
        self.metrics.failures.labels(ident, failure.reason).inc()
        transition = target.health.failure()
        n = target.health.consecutive_failures
        if transition is Transition.BECAME_UNHEALTHY:
            log.warning(
                "instance_unhealthy", instance=ident, url=target.config.url, failures=n, reason=failure.reason,
                detail=failure.detail,
            )  # fmt: skip
            self._update_gauges()
        elif n == 1:
            log.info("scrape_failed", instance=ident, reason=failure.reason, detail=failure.detail)

    async def _read_models(self, target: InstanceTarget) -> None:
        url = f"{target.config.url}/v1/models"
        try:
            status, body = await self._get(url)
            if status != 200:
                raise ModelInfoError(f"HTTP {status}")
            target.model_info = parse_models(body)
        except (TimeoutError, HttpError, ModelInfoError) as exc:
            log.warning("models_unreadable", instance=target.instance_id, url=url, error=str(exc) or type(exc).__name__)
            return
        target.health.model_info_read()
        log.info(
            "instance_model",
            instance=target.instance_id,
            model=target.model_info.model,
            max_model_len=target.model_info.max_model_len,
        )

    def _state(
        self, target: InstanceTarget, snap: MetricsSnapshot | None, rate: float | None, elapsed_s: float
    ) -> InstanceState:
        cfg, info = target.config, target.model_info
        labelled = next((m for m in snap.model_names if len(m) <= _MAX_MODEL_LEN), None) if snap else None
        model = cfg.model or (info.model if info is not None else None) or labelled
        return InstanceState(
            instance_id=cfg.instance_id,
            url=cfg.url,
            model=model or UNKNOWN_MODEL,
            hardware=cfg.hardware,
            num_running=snap.num_running if snap else 0,
            num_waiting=snap.num_waiting if snap else 0,
            kv_usage_frac=snap.kv_usage_frac if snap else 0.0,
            prefix_hit_rate=rate,
            prefix_cache_hits_total=snap.prefix_cache_hits_total if snap else None,
            prefix_cache_queries_total=snap.prefix_cache_queries_total if snap else None,
            block_size=snap.block_size if snap else None,
            num_gpu_blocks=snap.num_gpu_blocks if snap else None,
            max_model_len=info.max_model_len if info else None,
            healthy=target.health.healthy,
            consecutive_failures=target.health.consecutive_failures,
            scrape_latency_s=max(0.0, elapsed_s),
        )
