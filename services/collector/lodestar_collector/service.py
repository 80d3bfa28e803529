"""Wiring of one collector process: settings → instance source, HTTP client, publisher, scraper, API.

:meth:`CollectorService.build` reads the instance list (an unusable list fails here, before
anything starts) and builds the object graph; :meth:`CollectorService.run` runs it in the
current event loop until ``stop`` is set, then stops scraping, stops the API, flushes the
publisher (bounded) and closes the client. :func:`serve` adds SIGINT/SIGTERM handling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from lodestar.bus.publish import BufferedPublisher
from lodestar.bus.settings import KafkaSettings
from lodestar.http_client import HttpClient
from lodestar.serving import ApiServer, PortInUseError, bind_socket, ensure_topics_retrying, run_until_signal
from lodestar_collector.api import Health, InstanceHealth, build_app
from lodestar_collector.config import parse_instance_list
from lodestar_collector.metrics import CollectorMetrics
from lodestar_collector.reload import InstancesSource
from lodestar_collector.scraper import Scraper
from lodestar_collector.settings import CollectorSettings
from lodestar_schemas.topics import TopicName, topic_spec

__all__ = ["CollectorService", "PortInUseError", "serve"]

log = structlog.get_logger(__name__)

_DRAIN_TIMEOUT_S = 5.0
_API_STOP_TIMEOUT_S = 3.0


@dataclass
class CollectorService:
    """The object graph of one process."""

    settings: CollectorSettings
    kafka: KafkaSettings
    metrics: CollectorMetrics
    source: InstancesSource
    client: HttpClient
    publisher: BufferedPublisher
    scraper: Scraper
    api_port: int | None = None
    _tasks: list[asyncio.Task[object]] = field(default_factory=list, repr=False)

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
        client = HttpClient(connect_timeout_s=settings.timeout_s, max_connections=settings.max_connections)
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
        sock = bind_socket(self.settings.host, self.settings.port, "collector API")
        server = ApiServer(build_app(self.metrics, self.health), sock)
        self.api_port = server.port
        self.publisher.start()
        spec = (topic_spec(TopicName.INSTANCE_STATE),)
        self._tasks = [
            asyncio.create_task(ensure_topics_retrying(self.kafka, spec), name="collector-topics"),
            asyncio.create_task(self.source.run(self.settings.reload_poll_s), name="collector-reload"),
        ]
        self.scraper.start()
        server.start()
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
            await self._shutdown(server)

    async def _shutdown(self, server: ApiServer) -> None:
        log.info("collector_stopping", pending_events=self.publisher.pending)
        await self.scraper.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.stop(_API_STOP_TIMEOUT_S)
        await self.publisher.close(drain_timeout_s=_DRAIN_TIMEOUT_S)
        await self.client.aclose()
        stats = self.publisher.stats
        log.info("collector_stopped", accepted=stats.accepted, sent=stats.sent, dropped=stats.dropped)


async def serve(service: CollectorService) -> None:
    """Run ``service`` until SIGINT or SIGTERM."""
    await run_until_signal(service.run)
