"""Prometheus metric families that several services export the same way, read at render time
from the object that keeps the counts (so they never drift from its own accounting): a
:class:`~lodestar.bus.publish.BufferedPublisher`'s buffer (gateway, router, collector) and an
:class:`~lodestar.policy.ejection.Ejections` table (gateway, router). Each service names them
with its own prefix (``lodestar_gateway_events_dropped``, ``lodestar_router_ejections`` …)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from lodestar.bus.publish import PublisherStats
from lodestar.policy.ejection import EjectionCounters


def publisher_families(prefix: str, events: str, stats: PublisherStats, pending: int) -> Iterator[Metric]:
    """The publish buffer's counters; ``events`` says what it carries ("Outcome events")."""
    yield CounterMetricFamily(
        f"{prefix}_events_accepted", f"{events} accepted into the publish buffer", value=stats.accepted
    )
    yield CounterMetricFamily(f"{prefix}_events_published", f"{events} acknowledged by the broker", value=stats.sent)
    yield CounterMetricFamily(
        f"{prefix}_events_dropped", f"{events} dropped (buffer full, or unsent at shutdown)", value=stats.dropped
    )
    yield GaugeMetricFamily(f"{prefix}_events_pending", f"{events} waiting to be sent", pending)
    yield CounterMetricFamily(f"{prefix}_publish_failures", "Failed broker sends (retried)", value=stats.send_failures)


def ejection_families(prefix: str, failing: str, counters: EjectionCounters, ejected_now: int) -> Iterator[Metric]:
    """Outlier ejection's counters; ``failing`` says what ejects ("failing requests")."""
    yield CounterMetricFamily(
        f"{prefix}_ejections", f"Instances ejected after {failing} (outlier ejection)", value=counters.ejections
    )
    yield CounterMetricFamily(
        f"{prefix}_readmissions", "Ejected instances readmitted after their backoff", value=counters.readmissions
    )
    yield CounterMetricFamily(
        f"{prefix}_ejections_capped",
        "Failures that ejected nothing: the model's instances had as many ejected as allowed",
        value=counters.capped,
    )
    yield CounterMetricFamily(
        f"{prefix}_ejections_spared",
        "First-token deadlines missed while the instance served others: queueing, not failure (no ejection)",
        value=counters.spared,
    )
    yield GaugeMetricFamily(
        f"{prefix}_instances_ejected", "Instances ejected now (or awaiting a healthy scrape)", ejected_now
    )
