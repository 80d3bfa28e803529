"""Wiring of one collector process: settings → instance source, HTTP client, publisher, scraper, API.

:meth:`CollectorService.build` reads the instance list (an unusable list fails here, before
anything starts) and builds the object graph; :meth:`CollectorService.run` runs it in the
current event loop until ``stop`` is set, then stops scraping, stops the API, flushes the
publisher (bounded) and closes the client. :func:`serve` adds SIGINT/SIGTERM handling.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import httpx
import structlog
import uvicorn

from lodestar.bus.admin import ensure_topics
from lodestar.bus.publish import BufferedPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar_collector.api import Health, InstanceHealth, build_app
from lodestar_collector.config import parse_instance_list
from lodestar_collector.metrics import CollectorMetrics
from lodestar_collector.reload import InstancesSource
from lodestar_collector.scraper import Scraper
from lodestar_collector.settings import CollectorSettings
from lodestar_schemas.topics import TopicName, topic_spec

log = structlog.get_logger(__name__)

_DRAIN_TIMEOUT_S = 5.0
_API_STOP_TIMEOUT_S = 3.0


class PortInUseError(OSError):
    """The API port cannot be bound; the message names it."""


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handlers (the service owns SIGINT/SIGTERM)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be bound ({exc.strerror})"
        raise PortInUseError(exc.errno, f"collector API port {port} on {host} {why}") from None
    sock.setblocking(False)
    return sock


@dataclass
class CollectorService:
    """The object graph of one process."""

    settings: CollectorSettings
    kafka: KafkaSettings
    metrics: CollectorMetrics
    source: InstancesSource
    client: httpx.AsyncClient
    publisher: BufferedPublisher
    scraper: Scraper
    api_port: int | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list, repr=False)

    @classmethod
    def build(
        cls, settings: CollectorSettings, kafka: KafkaSettings, instance_args: Sequence[str] = ()
    ) -> CollectorService:
        """Read the instance list (InstancesConfigError if unusable) and build everything."""
        static = parse_instance_list([settings.instances, *instance_args])
        source = InstancesSource(settings.instances_file, static)
        initial = source.load()
        metrics = CollectorMetrics()
        publisher = BufferedPublisher(kafka, capacity=settings.publish_buffer)
        limits = httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_connections,
            keepalive_expiry=30.0,
        )
        client = httpx.AsyncClient(limits=limits, timeout=settings.timeout_s, follow_redirects=False)
        scraper = Scraper(
            client,
            publisher.publish,
            metrics,
            interval_s=settings.interval_s,
            timeout_s=settings.timeout_s,
            failure_threshold=settings.failure_threshold,
        )
        scraper.set_instances(initial)
        source.on_change = scraper.set_instances
        metrics.bind_publisher(lambda: publisher.stats, lambda: publisher.pending)
        metrics.bind_config(lambda: (source.reloads, source.reload_errors))
        return cls(settings, kafka, metrics, source, client, publisher, scraper)

    def health(self) -> Health:
        detail = [
            InstanceHealth(
                instance_id=t.instance_id,
                url=t.config.url,
                healthy=t.health.healthy,
                consecutive_failures=t.health.consecutive_failures,
            )
            for t in self.scraper.targets.values()
        ]
        return Health(
            status="ok",
            instances=len(detail),
            healthy=sum(1 for d in detail if d.healthy),
            pending_events=self.publisher.pending,
            detail=detail,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; PortInUseError before anything starts if the port is taken."""
        sock = _bind(self.settings.host, self.settings.port)
        self.api_port = sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(self.metrics, self.health),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = _ApiServer(config)
        self.publisher.start()
        self._tasks = [
            asyncio.create_task(_ensure_topic(self.kafka), name="collector-topics"),
            asyncio.create_task(self.source.run(self.settings.reload_poll_s), name="collector-reload"),
        ]
        self.scraper.start()
        api = asyncio.create_task(server.serve(sockets=[sock]), name="collector-api")
        log.info(
            "collector_ready",
            instances=[t.instance_id for t in self.scraper.targets.values()],
            instances_file=str(self.settings.instances_file) if self.settings.instances_file else None,
            interval_s=self.settings.interval_s,
            api=f"http://{self.settings.host}:{self.api_port}",
            topic=self.kafka.topic(TopicName.INSTANCE_STATE.value),
        )
        try:
            await stop.wait()
        finally:
            await self._shutdown(server, api)

    async def _shutdown(self, server: uvicorn.Server, api: asyncio.Task[None]) -> None:
        log.info("collector_stopping", pending_events=self.publisher.pending)
        await self.scraper.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        server.should_exit = True
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(api, _API_STOP_TIMEOUT_S)
        await self.publisher.close(drain_timeout_s=_DRAIN_TIMEOUT_S)
        await self.client.aclose()
        stats = self.publisher.stats
        log.info("collector_stopped", accepted=stats.accepted, sent=stats.sent, dropped=stats.dropped)


async def _ensure_topic(kafka: KafkaSettings) -> None:
    """Create the instance-state topic, retrying while the broker is unreachable."""
    spec = (topic_spec(TopicName.INSTANCE_STATE),)
    backoff = 0.5
    while True:
        try:
            await ensure_topics(kafka, spec)
            return
        except Exception as exc:  # aiokafka raises a wide variety while the broker is down
            log.warning("topic_setup_failed", error=f"{type(exc).__name__}: {exc}", retry_s=backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


async def serve(service: CollectorService) -> None:
    """Run ``service`` until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.run(stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
