"""Shared data of the history tests: a small, fully known set of events inside ``WINDOW``."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from lodestar_history.migrate import load_migrations
from lodestar_history.rows import COLUMNS, to_row
from lodestar_history.settings import HistorySettings, default_sql_dir
from lodestar_history.store import HistoryStore
from lodestar_history.target import parse_target
from lodestar_schemas import (
    CandidateRecord,
    DeadLetter,
    Event,
    InstanceState,
    ModelUpdate,
    RequestOutcome,
    RouteDecision,
)

SQL_DIR = default_sql_dir()
# A whole hour that ended before now (rows older than the retention would be dropped at insert).
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
WINDOW = {"from_ts": T0.isoformat(), "to_ts": (T0 + timedelta(hours=1)).isoformat()}
PRED = "estimated_ttft.predicted_ttft_s"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def open_store(directory: Path, database: str) -> HistoryStore:
    settings = HistorySettings(clickhouse_dsn=f"chdb://{directory}", clickhouse_database=database)
    store = HistoryStore(parse_target(settings))
    store.open()
    store.migrate(load_migrations(SQL_DIR), settings.retention_params())
    return store


def _decision(
    i: int,
    policy: str,
    instance: str,
    t_s: float,
    predicted_s: float,
    model_version: int | None = 1,
    cached: int = 0,
    explore: bool = False,
    fallback: bool = False,
    propensity: float = 1.0,
) -> RouteDecision:
    other = "b" if instance == "a" else "a"
    return RouteDecision(
        decision_id=f"d{i}",
        ts=at(t_s),
        model="m",
        instance_id=instance,
        policy=policy,
        model_version=model_version,
        prompt_tokens=1000,
        cached_prefix_tokens=cached,
        candidates=(
            CandidateRecord(instance_id=instance, score=0.9, features={PRED: predicted_s, "queue": 1.0}),
            CandidateRecord(instance_id=other, score=0.1, features={PRED: 9.0, "queue": 5.0}),
        ),
        explore=explore,
        fallback=fallback,
        propensity=propensity,
    )


def _outcome(
    decision: str,
    policy: str | None,
    instance: str | None,
    t_s: float,
    ttft_s: float | None,
    status: Literal["ok", "error", "cancelled"] = "ok",
    http_status: int = 200,
    error_class: str | None = None,
    fallback: bool = False,
    attempts: int = 1,
) -> RequestOutcome:
    return RequestOutcome(
        request_id=decision,
        decision_id=decision,
        ts=at(t_s),
        model="m",
        instance_id=instance,
        policy=policy,
        stream=True,
        prompt_tokens=1000,
        completion_tokens=10,
        ttft_s=ttft_s,
        e2e_s=1.0,
        status=status,
        http_status=http_status,
        error_class=error_class,
        fallback=fallback,
        attempts=attempts,
    )


def dataset() -> list[Event]:
    """Decisions d1..d6 (p1: d1-d4, p2: d5-d6), outcomes for d1..d5 plus an orphan, scrapes,
    two model versions, two dead letters. All in the first 2 minutes of ``WINDOW``."""
    weights = b"w" * 100
    return [
        _decision(1, "p1", "a", 1, predicted_s=0.2),
        _decision(2, "p1", "a", 2, predicted_s=0.2, explore=True, propensity=0.1, cached=500),
        _decision(3, "p1", "a", 3, predicted_s=0.4, fallback=True),
        _decision(4, "p1", "b", 4, predicted_s=0.4, model_version=2),
        _decision(5, "p2", "b", 65, predicted_s=1.0, model_version=None),
        _decision(6, "p2", "b", 66, predicted_s=1.0, model_version=None),
        _outcome("d1", "p1", "a", 5, 0.1),
        _outcome("d2", "p1", "a", 6, 0.3),
        _outcome("d3", "p1", "a", 7, 0.5, fallback=True, attempts=2),
        _outcome("d4", "p1", "b", 8, None, status="error", http_status=500, error_class="Timeout"),
        _outcome("d5", "p2", "b", 70, 2.0),
        _outcome("orphan", None, None, 71, None, status="error", http_status=503),
        *(
            InstanceState(
                ts=at(t),
                instance_id=inst,
                url=f"http://{inst}",
                model="m",
                num_running=run,
                num_waiting=wait,
                kv_usage_frac=kv,
                prefix_hit_rate=hit,
                healthy=True,
                scrape_latency_s=0.01,
            )
            for t, inst, run, wait, kv, hit in [
                (0, "a", 2, 0, 0.2, 0.5),
                (30, "a", 4, 2, 0.4, None),
                (0, "b", 1, 0, 0.1, 0.25),
                (30, "b", 3, 0, 0.3, 0.75),
            ]
        ),
        *(
            ModelUpdate(
                ts=at(t),
                version=v,
                feature_schema_version=1,
                weights_format="t/1",
                weights=weights,
                weights_sha256=hashlib.sha256(weights).hexdigest(),
                trained_samples=100 * v,
                metrics=metrics,
                parent_version=v - 1 or None,
            )
            for t, v, metrics in [(10, 1, {"loss": 0.5}), (20, 2, {"mae_s": 0.1})]
        ),
        DeadLetter(
            ts=at(30),
            source_topic="lodestar.route-decisions",
            partition=1,
            offset=3,
            reason="not UTF-8 JSON",
            payload_bytes=3,
            payload_head=b"\xff\x00x",
        ),
        DeadLetter(
            ts=at(90),
            source_topic="lodestar.instance-state",
            partition=0,
            offset=9,
            reason="bad",
            payload_bytes=0,
            payload_head=b"",
        ),
    ]


def insert_events(store: HistoryStore, events: list[Event], times: int = 1) -> None:
    """Insert each event ``times`` times (separate blocks, as re-deliveries would be)."""
    for _ in range(times):
        by_table: dict[str, list[tuple[object, ...]]] = {}
        for offset, event in enumerate(events):
            row = to_row(event, 0, offset)
            by_table.setdefault(row.table, []).append(row.values)
        for table, rows in by_table.items():
            store.insert(table, COLUMNS[table], rows)
