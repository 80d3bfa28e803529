"""The gateway's Prometheus metrics, in a per-process ``CollectorRegistry`` (never the global).

Request-path metrics are ordinary prometheus_client objects; the latency histograms' labelled
children are cached per (instance, policy) so a finished request costs a few dict lookups.
Counters owned by other objects (publisher, feedback queue, fleet, feed) are read at render
time by a collector, so they never drift from those objects' own accounting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from lodestar.bus.publish import PublisherStats
from lodestar.metric_families import ejection_families, publisher_families
from lodestar.policy.ejection import EjectionCounters

CONTENT_TYPE = CONTENT_TYPE_LATEST
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
TPOT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.25, 0.5, 1.0)
E2E_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 600.0)
ROUTE_BUCKETS = (1e-4, 2e-4, 4e-4, 8e-4, 0.0016, 0.0032, 0.0064, 0.0128, 0.025, 0.05, 0.1, 0.25)


@dataclass(frozen=True)
class Snapshot:
    """State owned elsewhere, read at render time."""

    publisher: PublisherStats
    events_pending: int
    feedback_sent: int
    feedback_dropped_full: int
    feedback_dropped_failed: int
    feedback_pending: int
    instances: int
    instances_healthy: int
    instance_states: int
    undecodable_states: int
    router_open: bool
    inflight_requests: int
    inflight_streams: int
    ejection: EjectionCounters = field(default_factory=EjectionCounters)
    instances_ejected: int = 0


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        yield from publisher_families("lodestar_gateway", "Outcome events", s.publisher, s.events_pending)
        yield CounterMetricFamily(
            "lodestar_gateway_feedback_sent", "Feedback events the router acknowledged", value=s.feedback_sent
        )
        dropped = CounterMetricFamily(
            "lodestar_gateway_feedback_dropped",
            "Feedback events dropped: queue full, or the router did not take the batch",
            labels=["reason"],
        )
        dropped.add_metric(["queue_full"], s.feedback_dropped_full)
        dropped.add_metric(["send_failed"], s.feedback_dropped_failed)
        yield dropped
        yield GaugeMetricFamily("lodestar_gateway_feedback_pending", "Feedback events queued", s.feedback_pending)
        yield GaugeMetricFamily("lodestar_gateway_instances", "Instances the gateway knows", s.instances)
        yield GaugeMetricFamily(
            "lodestar_gateway_instances_healthy", "Instances healthy and fresh (local view)", s.instances_healthy
        )
        yield CounterMetricFamily(
            "lodestar_gateway_instance_states", "Instance-state events applied", value=s.instance_states
        )
        yield CounterMetricFamily(
            "lodestar_gateway_undecodable_states", "Instance-state events that could not be decoded",
            value=s.undecodable_states,
        )  # fmt: skip
        yield GaugeMetricFamily(
            "lodestar_gateway_router_skipped",
            "1 while the router is skipped after consecutive failures (circuit open)",
            1.0 if s.router_open else 0.0,
        )
        yield GaugeMetricFamily("lodestar_gateway_inflight_requests", "Requests being served", s.inflight_requests)
        yield GaugeMetricFamily("lodestar_gateway_inflight_streams", "Streams being relayed", s.inflight_streams)
        yield from ejection_families("lodestar_gateway", "failing requests", s.ejection, s.instances_ejected)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        labels = ["instance", "policy"]
        self.ttft = Histogram(
            "lodestar_gateway_ttft_seconds",
            "Time to first token at the gateway",
            labels,
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.tpot = Histogram(
            "lodestar_gateway_tpot_seconds", "Time per output token after the first", labels, buckets=TPOT_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.e2e = Histogram(
            "lodestar_gateway_e2e_seconds", "Request received to response finished", labels, buckets=E2E_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.requests = Counter(
            "lodestar_gateway_requests",
            "Requests by endpoint, status (ok, error, cancelled) and HTTP status",
            ["endpoint", "status", "code"],
            registry=r,
        )
        self.fallbacks = Counter(
            "lodestar_gateway_fallbacks",
            "Requests routed by the local fallback policy, by reason",
            ["reason"],
            registry=r,
        )
        self.retries = Counter(
            "lodestar_gateway_retries", "Attempts on another instance after a connection failure", registry=r
        )
        self.upstream_failures = Counter(
            "lodestar_gateway_upstream_failures", "Failed attempts on an instance, by kind", ["kind"], registry=r
        )
        self.route_latency = Histogram(
            "lodestar_gateway_router_latency_seconds",
            "Round trip of POST /v1/route, by result",
            ["result"],
            buckets=ROUTE_BUCKETS,
            registry=r,
        )
        self._children: dict[tuple[str, str], tuple[Histogram, Histogram, Histogram]] = {}
        self._route_children: dict[str, Histogram] = {}

    def bind(self, snapshot: Callable[[], Snapshot]) -> None:
        self.registry.register(_SnapshotCollector(snapshot))

    def observe_route(self, result: str, seconds: float) -> None:
        """One route call's round trip (the labelled child kept: ``labels()`` costs more than
        the observation, and this is on every request's way to its first token)."""
        child = self._route_children.get(result)
        if child is None:
            child = self._route_children[result] = self.route_latency.labels(result)
        child.observe(seconds)

    def observe_latency(
        self, instance: str, policy: str, ttft_s: float | None, tpot_s: float | None, e2e_s: float
    ) -> None:
        key = (instance, policy)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.ttft.labels(instance, policy),
                self.tpot.labels(instance, policy),
                self.e2e.labels(instance, policy),
            )
        ttft, tpot, e2e = children
        if ttft_s is not None:
            ttft.observe(ttft_s)
        if tpot_s is not None:
            tpot.observe(tpot_s)
        e2e.observe(e2e_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
