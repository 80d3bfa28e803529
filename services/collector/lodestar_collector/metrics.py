"""The collector's own Prometheus metrics, in a per-process ``CollectorRegistry`` (never the global).

Publisher counters are read from the :class:`~lodestar.bus.publish.BufferedPublisher` at render
time (a custom collector), so they can never drift from the buffer's own accounting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from lodestar.bus.publish import PublisherStats
from lodestar.metric_families import publisher_families

CONTENT_TYPE = CONTENT_TYPE_LATEST
SCRAPE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _PublisherCollector(Collector):
    def __init__(self, stats: Callable[[], PublisherStats], pending: Callable[[], int]) -> None:
        self._stats = stats
        self._pending = pending

    def collect(self) -> Iterator[Metric]:
        yield from publisher_families("lodestar_collector", "Instance states", self._stats(), self._pending())


class _ConfigCollector(Collector):
    def __init__(self, reloads: Callable[[], tuple[int, int]]) -> None:
        self._reloads = reloads

    def collect(self) -> Iterator[Metric]:
        ok, rejected = self._reloads()
        family = CounterMetricFamily(
            "lodestar_collector_config_reloads", "Instance-file reloads by outcome", labels=["outcome"]
        )
        family.add_metric(["applied"], ok)
        family.add_metric(["rejected"], rejected)
        yield family


class CollectorMetrics:
    """Scrape counters and latency per instance, instance counts, config reloads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.scrapes = Counter(
            "lodestar_collector_scrapes",
            "Scrapes of /metrics per instance and outcome",
            ["instance", "outcome"],
            registry=r,
        )
        self.failures = Counter(
            "lodestar_collector_scrape_failures",
            "Failed scrapes per instance and reason (timeout, connection, http_status, parse)",
            ["instance", "reason"],
            registry=r,
        )
        self.latency = Histogram(
            "lodestar_collector_scrape_latency_seconds",
            "Wall time of one /metrics request and parse, per instance",
            ["instance"],
            buckets=SCRAPE_BUCKETS,
            registry=r,
        )
        self.instances = Gauge("lodestar_collector_instances", "Instances currently configured", registry=r)
        self.healthy = Gauge("lodestar_collector_instances_healthy", "Instances currently healthy", registry=r)
        self.loop_lag = Histogram(
            "lodestar_collector_tick_lag_seconds",
            "How late a scrape started against its schedule",
            buckets=SCRAPE_BUCKETS,
            registry=r,
        )

    def bind_publisher(self, stats: Callable[[], PublisherStats], pending: Callable[[], int]) -> None:
        self.registry.register(_PublisherCollector(stats, pending))

    def bind_config(self, reloads: Callable[[], tuple[int, int]]) -> None:
        """``reloads()`` → (instance lists installed by a reload, rejected reloads)."""
        self.registry.register(_ConfigCollector(reloads))

    def forget(self, instance_id: str) -> None:
        """Drop a removed instance's labelled series (best effort)."""
        for metric in (self.scrapes, self.failures, self.latency):
            for labels in list(metric._metrics):  # prometheus_client has no public listing
                if labels and labels[0] == instance_id:
                    metric.remove(*labels)

    def render(self) -> bytes:
        return generate_latest(self.registry)
