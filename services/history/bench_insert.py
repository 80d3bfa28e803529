"""Insert throughput of the history store into chDB (a benchmark, not a test).

    .venv/bin/python services/history/bench_insert.py [--rows 200000] [--batch 5000]

Maps synthetic events to rows (as the sink does) and inserts them in blocks into a fresh chDB
directory; prints rows/s per table for mapping and for inserting, then times a few named
queries (with FINAL) over what was inserted, once more after a second copy of every row.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lodestar_history.migrate import load_migrations
from lodestar_history.queries import QueryCatalog
from lodestar_history.rows import COLUMNS, to_row
from lodestar_history.settings import HistorySettings
from lodestar_history.store import HistoryStore
from lodestar_history.target import parse_target
from lodestar_schemas import CandidateRecord, Event, InstanceState, ModelUpdate, RequestOutcome, RouteDecision


def _decision(i: int, ts: datetime) -> RouteDecision:
    return RouteDecision(
        decision_id=f"req-{i}",
        ts=ts,
        model="llama-3-8b",
        instance_id=f"gpu-{i % 8}",
        policy=("lodestar", "round_robin", "cache_aware")[i % 3],
        model_version=1 + i // 10_000,
        feature_schema_version=1,
        prompt_tokens=1000 + i % 977,
        cached_prefix_tokens=i % 512,
        candidates=tuple(
            CandidateRecord(
                instance_id=f"gpu-{(i + k) % 8}",
                score=1.0 / (k + 1),
                features={"queue.depth": float(k), "kv.usage": 0.1 * k, "estimated_ttft.predicted_ttft_s": 0.05 * k},
            )
            for k in range(8)
        ),
        explore=i % 20 == 0,
        propensity=0.9,
    )


def _outcome(i: int, ts: datetime) -> RequestOutcome:
    return RequestOutcome(
        request_id=f"req-{i}",
        decision_id=f"req-{i}",
        ts=ts,
        model="llama-3-8b",
        instance_id=f"gpu-{i % 8}",
        policy=("lodestar", "round_robin", "cache_aware")[i % 3],
        stream=True,
        prompt_tokens=1000,
        completion_tokens=128,
        ttft_s=0.05 + (i % 100) / 1000,
        tpot_s=0.01,
        e2e_s=1.4,
        status="ok",
        http_status=200,
    )


def _state(i: int, ts: datetime) -> InstanceState:
    return InstanceState(
        instance_id=f"gpu-{i % 8}",
        ts=ts,
        url=f"http://10.0.0.{i % 8}:8000",
        model="llama-3-8b",
        num_running=i % 32,
        num_waiting=i % 5,
        kv_usage_frac=(i % 100) / 100,
        prefix_hit_rate=0.5,
        healthy=True,
        scrape_latency_s=0.003,
    )


def _update(i: int, ts: datetime) -> ModelUpdate:
    weights = b"x" * 1024
    return ModelUpdate(
        ts=ts,
        version=i + 1,
        feature_schema_version=1,
        weights_format="torch/1",
        weights=weights,
        weights_sha256=hashlib.sha256(weights).hexdigest(),
        trained_samples=1000 * i,
        metrics={"loss": 1.0 / (i + 1)},
    )


MAKERS: dict[str, Callable[[int, datetime], Event]] = {
    "route_decisions": _decision,
    "request_outcomes": _outcome,
    "instance_states": _state,
    "model_updates": _update,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="rows per table")
    parser.add_argument("--batch", type=int, default=5_000, help="rows per insert block")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="lodestar-bench-") as tmp:
        settings = HistorySettings(clickhouse_dsn=f"chdb://{Path(tmp) / 'chdb'}")
        store = HistoryStore(parse_target(settings))
        store.open()
        store.migrate(load_migrations(settings.sql_dir), settings.retention_params())
        start_ts = datetime.now(UTC) - timedelta(minutes=50)
        step = timedelta(seconds=3000 / args.rows)
        print(f"chDB insert throughput, {args.rows} rows per table, blocks of {args.batch}")
        all_rows: dict[str, list[tuple[object, ...]]] = {}
        for table, make in MAKERS.items():
            n = args.rows if table != "model_updates" else min(args.rows, 2000)
            t0 = time.perf_counter()
            events = [make(i, start_ts + i * step) for i in range(n)]
            t1 = time.perf_counter()
            rows = [to_row(e, 0, i).values for i, e in enumerate(events)]
            t2 = time.perf_counter()
            for i in range(0, n, args.batch):
                store.insert(table, COLUMNS[table], rows[i : i + args.batch])
            t3 = time.perf_counter()
            all_rows[table] = rows
            print(
                f"  {table:17s} build {n / (t1 - t0):>10,.0f} ev/s   map {n / (t2 - t1):>10,.0f} rows/s"
                f"   insert {n / (t3 - t2):>10,.0f} rows/s"
            )
        catalog = QueryCatalog.load(settings.sql_dir / "queries")
        params = {"from_ts": "now-1h", "to_ts": "now+1m", "limit": 1_000_000}
        for label in ("queries (FINAL), one copy", "queries (FINAL), every row twice"):
            print(label)
            for name in ("ttft_by_policy", "instance_traffic", "exploration", "event_counts", "decisions_outcomes"):
                query = catalog.get(name)
                bound = query.bind({k: v for k, v in params.items() if k in {p.name for p in query.params}},
                                   datetime.now(UTC))  # fmt: skip
                t0 = time.perf_counter()
                result = store.query(query.sql, bound)
                print(f"  {name:20s} {len(result.rows):>8} rows in {time.perf_counter() - t0:6.3f}s")
            for table, rows in all_rows.items():  # re-deliver everything: dedupe cost at read time
                for i in range(0, len(rows), args.batch):
                    store.insert(table, COLUMNS[table], rows[i : i + args.batch])
        store.close()


if __name__ == "__main__":
    main()
