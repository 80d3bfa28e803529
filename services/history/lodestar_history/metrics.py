"""Prometheus metrics of one history process, in its own ``CollectorRegistry`` (never the global)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST


class HistoryMetrics:
    """Counters and gauges the sink and the query API update. Not thread-safe beyond what
    prometheus_client guarantees (its metric updates are)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rows_inserted = Counter(
            "lodestar_history_rows_inserted", "Rows inserted into ClickHouse, per table", ["table"], registry=r
        )
        self.insert_batches = Counter(
            "lodestar_history_insert_batches", "Successful insert blocks, per table", ["table"], registry=r
        )
        self.insert_failures = Counter(
            "lodestar_history_insert_failures", "Failed insert attempts (retried), per table", ["table"], registry=r
        )
        self.insert_seconds = Histogram(
            "lodestar_history_insert_seconds",
            "Duration of successful inserts, per table",
            ["table"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.flushes = Counter(
            "lodestar_history_flushes", "Batches inserted and committed to the consumer group", registry=r
        )
        self.consumer_failures = Counter(
            "lodestar_history_consumer_failures",
            "Broker-side failures that restarted the consumer (connect, poll, dead-letter send, commit)",
            registry=r,
        )
        self.dead_lettered = Counter(
            "lodestar_history_dead_lettered",
            "Undecodable messages this sink sent to the dead-letter topic",
            registry=r,
        )
        self.unstorable = Counter(
            "lodestar_history_unstorable_events",
            "Decoded events stored as dead letters because a value did not fit its column",
            ["table"],
            registry=r,
        )
        self.buffered_rows = Gauge("lodestar_history_buffered_rows", "Rows waiting for the next insert", registry=r)
        self.consumer_up = Gauge(
            "lodestar_history_consumer_up", "1 while the consumer is connected and polling", registry=r
        )
        self.consumer_lag = Gauge(
            "lodestar_history_consumer_lag_messages",
            "High watermark from the latest fetch minus the consumer position, per partition (not from end_offsets)",
            ["topic", "partition"],
            registry=r,
        )
        self.last_event_ts = Gauge(
            "lodestar_history_last_event_timestamp_seconds",
            "Event time of the newest event inserted, per table (now minus this is the ingest delay)",
            ["table"],
            registry=r,
        )
        self.last_flush_ts = Gauge(
            "lodestar_history_last_flush_timestamp_seconds", "Wall time of the last committed flush", registry=r
        )
        self.queries = Counter(
            "lodestar_history_queries", "Query API calls, per query and outcome", ["query", "outcome"], registry=r
        )
        self.query_seconds = Histogram(
            "lodestar_history_query_seconds",
            "Duration of successful queries, per query",
            ["query"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
