"""The router's Prometheus metrics, in a per-process ``CollectorRegistry`` (never the global).

Counters the router updates on the request path are ordinary prometheus_client objects (the
labelled children are cached per policy so a decision costs a few dict lookups). Everything
owned by another object — publisher, model store, instance directory, consumers — is read at
render time by a custom collector, so it can never drift from that object's own accounting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from lodestar.bus.publish import PublisherStats
from lodestar.metric_families import ejection_families, publisher_families
from lodestar.policy.ejection import EjectionCounters

CONTENT_TYPE = CONTENT_TYPE_LATEST
DECIDE_BUCKETS = (25e-6, 50e-6, 100e-6, 200e-6, 400e-6, 800e-6, 0.0016, 0.0032, 0.0064, 0.0128, 0.025, 0.05, 0.1)


@dataclass(frozen=True)
class Snapshot:
    """State owned elsewhere, read at render time."""

    policy: str
    active_model_version: int | None
    latest_model_version: int | None
    models_accepted: int
    models_stale: int
    models_rejected: Mapping[str, int]
    instances: int
    instances_healthy: int
    inflight_decisions: int
    states_applied: int
    states_out_of_order: int
    states_arrived_stale: int
    consumer_dead_letters: int
    publisher: PublisherStats
    events_pending: int
    ejection: EjectionCounters = field(default_factory=EjectionCounters)
    instances_ejected: int = 0


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        info = GaugeMetricFamily("lodestar_router_policy", "The policy in force (value 1)", labels=["policy"])
        info.add_metric([s.policy], 1.0)
        yield info
        yield GaugeMetricFamily(
            "lodestar_router_model_version",
            "Predictor version the policy uses (0: none, or the policy is not learned)",
            s.active_model_version or 0,
        )
        yield GaugeMetricFamily(
            "lodestar_router_latest_model_version", "Newest valid model received (0: none)", s.latest_model_version or 0
        )
        yield CounterMetricFamily(
            "lodestar_router_models_accepted", "Valid model updates kept", value=s.models_accepted
        )
        yield CounterMetricFamily(
            "lodestar_router_models_stale", "Valid model updates not newer than the one held", value=s.models_stale
        )
        rejected = CounterMetricFamily(
            "lodestar_router_models_rejected", "Model updates rejected (old model kept), by reason", labels=["reason"]
        )
        for reason, n in sorted(s.models_rejected.items()):
            rejected.add_metric([reason], n)
        yield rejected
        yield GaugeMetricFamily("lodestar_router_instances", "Instances known", s.instances)
        yield GaugeMetricFamily("lodestar_router_instances_healthy", "Instances healthy and fresh", s.instances_healthy)
        yield GaugeMetricFamily(
            "lodestar_router_inflight_decisions", "Routed requests awaiting final feedback", s.inflight_decisions
        )
        states = CounterMetricFamily(
            "lodestar_router_instance_states", "Instance-state events by outcome", labels=["outcome"]
        )
        states.add_metric(["applied"], s.states_applied)
        states.add_metric(["out_of_order"], s.states_out_of_order)
        yield states
        yield CounterMetricFamily(
            "lodestar_router_instance_states_arrived_stale",
            "Instance states already older than the staleness limit on arrival (clock skew or consumer lag)",
            value=s.states_arrived_stale,
        )
        yield CounterMetricFamily(
            "lodestar_router_undecodable_events",
            "Events the router's consumers could not decode",
            value=s.consumer_dead_letters,
        )
        yield from publisher_families("lodestar_router", "Decision events", s.publisher, s.events_pending)
        yield from ejection_families("lodestar_router", "failed feedback", s.ejection, s.instances_ejected)


class RouterMetrics:
    """Decisions, latency, errors and feedback, plus a snapshot collector bound by the service."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter(
            "lodestar_router_decisions",
            "Routing decisions by policy and chosen instance",
            ["policy", "instance"],
            registry=r,
        )
        self.fallback = Counter(
            "lodestar_router_fallback_decisions",
            "Decisions taken without the model (cold-start heuristic or drift control)",
            ["policy"],
            registry=r,
        )
        self.explore = Counter("lodestar_router_explore_decisions", "Exploratory decisions", ["policy"], registry=r)
        self.decide_latency = Histogram(
            "lodestar_router_decide_latency_seconds",
            "Wall time of policy.decide per decision",
            ["policy"],
            buckets=DECIDE_BUCKETS,
            registry=r,
        )
        self.unavailable = Counter(
            "lodestar_router_no_instance", "Route requests answered 503 (no usable instance)", registry=r
        )
        self.bad_requests = Counter(
            "lodestar_router_bad_requests", "Requests rejected as invalid (400)", ["endpoint"], registry=r
        )
        self.feedback = Counter(
            "lodestar_router_feedback",
            "Feedback events by kind and outcome (applied, unknown decision, instance mismatch)",
            ["kind", "outcome"],
            registry=r,
        )
        self.retries = Counter(
            "lodestar_router_retries", "Route requests for a request id still in flight (a retry)", registry=r
        )
        self.expired = Counter(
            "lodestar_router_expired_decisions", "In-flight decisions released without final feedback", registry=r
        )
        self.removed_instances = Counter(
            "lodestar_router_instances_removed", "Instances forgotten after long silence", registry=r
        )
        self.invalid_events = Counter(
            "lodestar_router_events_invalid", "Decision events that failed validation (not published)", registry=r
        )
        self.policy_swaps = Counter("lodestar_router_policy_swaps", "Policies switched in by the admin", registry=r)
        self._per_policy: dict[str, tuple[Histogram, Counter, Counter]] = {}

    def bind(self, snapshot: Callable[[], Snapshot]) -> None:
        self.registry.register(_SnapshotCollector(snapshot))

    def observe_decision(self, policy: str, instance_id: str, fallback: bool, explore: bool, decide_s: float) -> None:
        children = self._per_policy.get(policy)
        if children is None:
            children = self._per_policy[policy] = (
                self.decide_latency.labels(policy),
                self.fallback.labels(policy),
                self.explore.labels(policy),
            )
        latency, fb, ex = children
        latency.observe(decide_s)
        self.decisions.labels(policy, instance_id).inc()
        if fallback:
            fb.inc()
        if explore:
            ex.inc()

    def forget_instance(self, instance_id: str) -> None:
        """Drop a removed instance's labelled series (best effort)."""
        for labels in list(self.decisions._metrics):  # prometheus_client has no public listing
            if labels[1] == instance_id:
                self.decisions.remove(*labels)

    def render(self) -> bytes:
        return generate_latest(self.registry)
