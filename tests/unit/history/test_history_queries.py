"""Every named query runs on chDB against the known dataset (each event stored twice) and
returns its columns and the deduplicated values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from history_helpers import WINDOW, dataset, insert_events

from lodestar_history.queries import QueryCatalog
from lodestar_history.rows import TABLES
from lodestar_history.settings import default_sql_dir
from lodestar_history.store import HistoryStore
from lodestar_schemas import Event

CATALOG = QueryCatalog.load(default_sql_dir() / "queries")

COLUMNS: dict[str, tuple[str, ...]] = {
    "ttft_by_policy": ("t", "policy", "requests", "ttft_p50_s", "ttft_p99_s", "ttft_mean_s"),
    "ttft_by_instance": ("t", "instance_id", "requests", "ttft_p50_s", "ttft_p99_s", "ttft_mean_s"),
    "instance_traffic": ("t", "instance_id", "decisions", "rate_per_s", "share"),
    "instance_load": (
        "t",
        "instance_id",
        "scrapes",
        "running_avg",
        "running_max",
        "waiting_avg",
        "waiting_max",
        "kv_usage_avg",
        "kv_usage_max",
        "healthy_frac",
    ),
    "prefix_hit_rate": ("t", "instance_id", "scrapes", "hit_rate_avg"),
    "prefix_reuse_by_policy": (
        "t",
        "policy",
        "decisions",
        "cached_tokens_sum",
        "prompt_tokens_sum",
        "cached_token_frac",
    ),
    "model_versions": (
        "ts",
        "version",
        "parent_version",
        "feature_schema_version",
        "weights_format",
        "weights_bytes",
        "weights_sha256",
        "trained_samples",
        "metric_value",
        "metrics",
    ),
    "prediction_error": (
        "t",
        "model_version",
        "samples",
        "mae_s",
        "bias_s",
        "predicted_mean_s",
        "measured_mean_s",
    ),
    "exploration": (
        "t",
        "policy",
        "decisions",
        "explored",
        "fallbacks",
        "explore_rate",
        "fallback_rate",
        "propensity_mean",
        "propensity_min",
    ),
    "outcome_status": (
        "t",
        "policy",
        "requests",
        "ok",
        "errors",
        "cancelled",
        "error_rate",
        "gateway_fallbacks",
        "retries",
    ),
    "dead_letters": ("t", "source_topic", "letters", "payload_bytes"),
    "dead_letter_list": (
        "ts",
        "event_id",
        "source_topic",
        "source_partition",
        "source_offset",
        "reason",
        "field",
        "payload_bytes",
        "payload_head_hex",
    ),
    "event_gaps": ("t", "decisions", "outcomes", "decisions_without_outcome", "outcomes_without_decision"),
    "event_counts": ("table_name", "events", "first_ts", "last_ts"),
    "event_ids": ("table_name", "event_id", "ts"),
    "decisions_outcomes": (
        "decision_id",
        "ts",
        "decision_event_id",
        "policy",
        "model_version",
        "feature_schema_version",
        "model",
        "instance_id",
        "explore",
        "fallback",
        "propensity",
        "prompt_tokens",
        "cached_prefix_tokens",
        "prefix_segments",
        "candidate_ids",
        "candidate_scores",
        "candidate_features",
        "chosen_index",
        "has_outcome",
        "outcome_ts",
        "status",
        "http_status",
        "error_class",
        "ttft_s",
        "tpot_s",
        "e2e_s",
        "completion_tokens",
        "attempts",
        "gateway_fallback",
        "outcome_instance_id",
    ),
}


def run(store: HistoryStore, name: str, **params: Any) -> list[dict[str, Any]]:
    query = CATALOG.get(name)
    result = store.query(query.sql, query.bind({**WINDOW, **params}, datetime.now(UTC)))
    assert result.columns == COLUMNS[name]
    return [dict(zip(result.columns, row, strict=True)) for row in result.rows]


def test_every_named_query_is_covered() -> None:
    assert sorted(COLUMNS) == CATALOG.names()


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_query_runs_and_returns_its_columns(history_dataset: HistoryStore, name: str) -> None:
    assert run(history_dataset, name)


@pytest.mark.parametrize("name", sorted(COLUMNS))
def test_query_on_an_empty_range_still_names_its_columns(history_dataset: HistoryStore, name: str) -> None:
    query = CATALOG.get(name)
    empty = {"from_ts": "2000-01-01T00:00:00Z", "to_ts": "2000-01-02T00:00:00Z"}
    params = {k: v for k, v in empty.items() if k in {p.name for p in query.params}}
    result = history_dataset.query(query.sql, query.bind(params, datetime.now(UTC)))
    assert result.columns == COLUMNS[name]
    if name == "event_counts":  # one row per table, even when empty
        assert sorted(result.rows) == [(t, 0, None, None) for t in sorted(TABLES)]
    else:
        assert result.rows == []


def test_counts_are_deduplicated(history_dataset: HistoryStore) -> None:
    counts = {r["table_name"]: r["events"] for r in run(history_dataset, "event_counts")}
    expected: dict[str, int] = {}
    for event in dataset():
        table = {
            "InstanceState": "instance_states",
            "RouteDecision": "route_decisions",
            "RequestOutcome": "request_outcomes",
            "ModelUpdate": "model_updates",
            "DeadLetter": "dead_letters",
        }[type(event).__name__]
        expected[table] = expected.get(table, 0) + 1
    assert counts == expected
    ids = run(history_dataset, "event_ids")
    assert len(ids) == len({r["event_id"] for r in ids}) == len(dataset())


def test_dedupe_is_done_at_read_time_even_without_merges(empty_store: HistoryStore, events: list[Event]) -> None:
    now = datetime.now(UTC)
    fresh = [e.model_copy(update={"ts": now}) for e in events]
    for table in TABLES:
        empty_store.writer.command(f"SYSTEM STOP MERGES {table}")
    insert_events(empty_store, fresh, times=3)
    raw = empty_store.query(
        "SELECT count() FROM (SELECT event_id FROM route_decisions UNION ALL SELECT event_id FROM dead_letters)"
    ).rows[0][0]
    assert raw == 6  # three physical copies each: nothing merged them away
    window = {"from_ts": "now-1h", "to_ts": "now+1h"}
    query = CATALOG.get("event_counts")
    rows = empty_store.query(query.sql, query.bind(window, now)).rows
    assert {r[0]: r[1] for r in rows} == {t: 1 for t in TABLES}
    query = CATALOG.get("decisions_outcomes")
    joined = empty_store.query(query.sql, query.bind(window, now)).rows
    assert len(joined) == 1


def test_ttft_by_policy(history_dataset: HistoryStore) -> None:
    rows = run(history_dataset, "ttft_by_policy")
    assert [(r["policy"], r["requests"], r["ttft_p50_s"], r["ttft_mean_s"]) for r in rows] == [
        ("p1", 3, pytest.approx(0.3), pytest.approx(0.3)),
        ("p2", 1, pytest.approx(2.0), pytest.approx(2.0)),
    ]
    assert rows[0]["ttft_p50_s"] <= rows[0]["ttft_p99_s"] <= 0.5
    assert [r["policy"] for r in run(history_dataset, "ttft_by_policy", policy="p2")] == ["p2"]


def test_ttft_by_instance_skips_requests_that_reached_no_instance(history_dataset: HistoryStore) -> None:
    rows = run(history_dataset, "ttft_by_instance")
    assert [(r["instance_id"], r["requests"]) for r in rows] == [("a", 3), ("b", 1)]


def test_instance_traffic_shares(history_dataset: HistoryStore) -> None:
    rows = run(history_dataset, "instance_traffic", bucket_s=60)
    assert [(r["instance_id"], r["decisions"], r["share"]) for r in rows] == [
        ("a", 3, 0.75),
        ("b", 1, 0.25),
        ("b", 2, 1.0),
    ]
    assert rows[0]["rate_per_s"] == pytest.approx(3 / 60)


def test_instance_load_and_prefix_hit_rate(history_dataset: HistoryStore) -> None:
    load = {r["instance_id"]: r for r in run(history_dataset, "instance_load")}
    assert (load["a"]["running_avg"], load["a"]["waiting_max"], load["a"]["kv_usage_max"]) == (3.0, 2, 0.4)
    assert load["b"]["healthy_frac"] == 1.0
    hits = {r["instance_id"]: (r["scrapes"], r["hit_rate_avg"]) for r in run(history_dataset, "prefix_hit_rate")}
    assert hits == {"a": (1, 0.5), "b": (2, 0.5)}
    reuse = run(history_dataset, "prefix_reuse_by_policy")
    assert [(r["policy"], r["cached_token_frac"]) for r in reuse] == [("p1", 0.125), ("p2", 0.0)]


def test_model_versions_with_a_chosen_metric(history_dataset: HistoryStore) -> None:
    assert [r["metric_value"] for r in run(history_dataset, "model_versions")] == [None, None]  # train_loss
    rows = run(history_dataset, "model_versions", metric="loss")
    assert [(r["version"], r["parent_version"], r["metric_value"], r["weights_bytes"]) for r in rows] == [
        (1, None, 0.5, 100),
        (2, 1, None, 100),
    ]
    assert [r["metric_value"] for r in run(history_dataset, "model_versions", metric="mae_s")] == [None, 0.1]


def test_prediction_error_per_model_version(history_dataset: HistoryStore) -> None:
    rows = run(history_dataset, "prediction_error")
    assert [(r["model_version"], r["samples"]) for r in rows] == [(1, 3), (None, 1)]
    assert rows[0]["mae_s"] == pytest.approx(0.1)
    assert rows[0]["bias_s"] == pytest.approx(-0.1 / 3)
    assert rows[1]["mae_s"] == pytest.approx(1.0)
    assert run(history_dataset, "prediction_error", feature="no_such_feature") == []


def test_exploration_and_outcome_status(history_dataset: HistoryStore) -> None:
    rows = run(history_dataset, "exploration")
    assert [(r["policy"], r["explore_rate"], r["fallback_rate"], r["propensity_min"]) for r in rows] == [
        ("p1", 0.25, 0.25, 0.1),
        ("p2", 0.0, 0.0, 1.0),
    ]
    status = run(history_dataset, "outcome_status")
    assert [(r["policy"], r["requests"], r["errors"], r["gateway_fallbacks"], r["retries"]) for r in status] == [
        ("p1", 4, 1, 1, 1),
        ("", 1, 1, 0, 0),
        ("p2", 1, 0, 0, 0),
    ]


def test_dead_letters(history_dataset: HistoryStore) -> None:
    rows = run(history_dataset, "dead_letters", bucket_s=3600)
    assert [(r["source_topic"], r["letters"]) for r in rows] == [
        ("lodestar.instance-state", 1),
        ("lodestar.route-decisions", 1),
    ]
    listed = run(history_dataset, "dead_letter_list", source_topic="lodestar.route-decisions")
    assert [(r["reason"], r["payload_head_hex"].lower()) for r in listed] == [("not UTF-8 JSON", "ff0078")]
    assert len(run(history_dataset, "dead_letter_list", limit=1)) == 1


def test_event_gaps_find_dropped_decisions_and_outcomes(history_dataset: HistoryStore) -> None:
    rows = run(history_dataset, "event_gaps", bucket_s=3600)
    assert [
        (r["decisions"], r["outcomes"], r["decisions_without_outcome"], r["outcomes_without_decision"]) for r in rows
    ] == [(6, 6, 1, 1)]


def test_decisions_joined_with_outcomes(history_dataset: HistoryStore) -> None:
    rows = run(history_dataset, "decisions_outcomes")
    assert [r["decision_id"] for r in rows] == ["d1", "d2", "d3", "d4", "d5", "d6"]
    by_id = {r["decision_id"]: r for r in rows}
    assert by_id["d2"]["explore"] is True
    assert by_id["d2"]["propensity"] == 0.1
    assert by_id["d2"]["candidate_ids"] == ["a", "b"]
    assert by_id["d2"]["candidate_features"][0]["queue"] == 1.0
    assert (by_id["d3"]["ttft_s"], by_id["d3"]["attempts"], by_id["d3"]["gateway_fallback"]) == (0.5, 2, True)
    assert (by_id["d4"]["status"], by_id["d4"]["ttft_s"], by_id["d4"]["error_class"]) == ("error", None, "Timeout")
    assert by_id["d6"]["has_outcome"] is False or by_id["d6"]["has_outcome"] == 0
    assert (by_id["d6"]["status"], by_id["d6"]["e2e_s"], by_id["d6"]["outcome_ts"]) == (None, None, None)
    page = run(history_dataset, "decisions_outcomes", limit=2, offset=2, policy="p1")
    assert [r["decision_id"] for r in page] == ["d3", "d4"]
