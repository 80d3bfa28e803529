"""The metric families services share are named with each service's prefix and carry the
counts of the object they read, rendered as Prometheus text (what /metrics serves)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from lodestar.bus.publish import PublisherStats
from lodestar.metric_families import ejection_families, publisher_families
from lodestar.policy.ejection import EjectionCounters


class _Families(Collector):
    def __init__(self, families: Callable[[], Iterator[Metric]]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return self._families()


def _render(families: Callable[[], Iterator[Metric]]) -> dict[str, tuple[str, float]]:
    """sample name → (help of its family, value)."""
    registry = CollectorRegistry()
    registry.register(_Families(families))
    text = generate_latest(registry).decode()
    return {s.name: (f.documentation, s.value) for f in text_string_to_metric_families(text) for s in f.samples}


def test_publisher_families_read_the_buffers_counts() -> None:
    stats = PublisherStats(accepted=7, sent=5, dropped=1, send_failures=2)
    page = _render(lambda: publisher_families("lodestar_router", "Decision events", stats, 1))
    assert {name: value for name, (_, value) in page.items()} == {
        "lodestar_router_events_accepted_total": 7,
        "lodestar_router_events_published_total": 5,
        "lodestar_router_events_dropped_total": 1,
        "lodestar_router_events_pending": 1,
        "lodestar_router_publish_failures_total": 2,
    }
    assert (
        page["lodestar_router_events_dropped_total"][0]
        == "Decision events dropped (buffer full, or unsent at shutdown)"
    )


def test_ejection_families_read_the_ejection_counters() -> None:
    counters = EjectionCounters(ejections=3, readmissions=2, capped=1, spared=4)
    page = _render(lambda: ejection_families("lodestar_gateway", "failing requests", counters, 1))
    assert {name: value for name, (_, value) in page.items()} == {
        "lodestar_gateway_ejections_total": 3,
        "lodestar_gateway_readmissions_total": 2,
        "lodestar_gateway_ejections_capped_total": 1,
        "lodestar_gateway_ejections_spared_total": 4,
        "lodestar_gateway_instances_ejected": 1,
    }
    assert page["lodestar_gateway_ejections_total"][0] == "Instances ejected after failing requests (outlier ejection)"
