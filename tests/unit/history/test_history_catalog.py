"""The named-query files: they parse, declare every parameter, read with FINAL; binding rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lodestar_history.params import QueryParamError, coerce, parse_time
from lodestar_history.queries import QueryCatalog, UnknownQueryError, grafana_sql, parse_query_file
from lodestar_history.rows import TABLES
from lodestar_history.settings import default_sql_dir
from lodestar_history.sqltext import placeholders, tokenize
from lodestar_history.target import HistoryConfigError

SQL_DIR = default_sql_dir()

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def catalog() -> QueryCatalog:
    return QueryCatalog.load(SQL_DIR / "queries")


def test_catalog_has_the_queries_report_replay_and_dashboards_need(catalog: QueryCatalog) -> None:
    assert set(catalog.names()) >= {
        "ttft_by_policy",
        "ttft_by_instance",
        "instance_traffic",
        "instance_load",
        "prefix_hit_rate",
        "prefix_reuse_by_policy",
        "model_versions",
        "prediction_error",
        "exploration",
        "outcome_status",
        "dead_letters",
        "dead_letter_list",
        "event_gaps",
        "event_counts",
        "event_ids",
        "decisions_outcomes",
    }
    assert all(q.description for q in catalog)


def test_every_table_read_is_read_with_final(catalog: QueryCatalog) -> None:
    """Dedupe by event id happens at read time: ``FROM <table>`` must be followed by FINAL."""
    for query in catalog:
        code = [t for t in tokenize(query.sql) if t.kind not in ("space", "comment")]
        reads = [i for i, t in enumerate(code) if t.kind == "word" and t.text in TABLES and i > 0]
        assert reads, f"{query.name} reads no table"
        for i in reads:
            if code[i - 1].text.upper() in ("FROM", "JOIN"):
                assert code[i + 1].text.upper() == "FINAL", f"{query.name}: {code[i].text} read without FINAL"


def test_defaults_bind_to_typed_values(catalog: QueryCatalog) -> None:
    bound = catalog.get("ttft_by_policy").bind({}, NOW)
    assert bound == {"from_ts": NOW - timedelta(hours=1), "to_ts": NOW, "bucket_s": 60, "policy": ""}


def test_given_values_are_coerced(catalog: QueryCatalog) -> None:
    bound = catalog.get("decisions_outcomes").bind(
        {"from_ts": "2026-05-01T10:00:00Z", "to_ts": "now-5m", "limit": "10", "policy": "p1"}, NOW
    )
    assert bound["from_ts"] == datetime(2026, 5, 1, 10, tzinfo=UTC)
    assert bound["to_ts"] == NOW - timedelta(minutes=5)
    assert bound["limit"] == 10
    assert bound["policy"] == "p1"


def test_unknown_query_names_the_known_ones(catalog: QueryCatalog) -> None:
    with pytest.raises(UnknownQueryError) as err:
        catalog.get("drop_everything")
    assert "unknown query 'drop_everything'" in str(err.value)
    assert "ttft_by_policy" in str(err.value)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"nope": 1}, "has no parameter(s) ['nope']"),
        ({"bucket_s": "abc"}, "'bucket_s' (UInt32): expected an integer"),
        ({"bucket_s": -1}, "'bucket_s' (UInt32): -1 is outside"),
        ({"bucket_s": 1.5}, "'bucket_s' (UInt32): expected an integer"),
        ({"from_ts": "yesterday"}, "'from_ts' (DateTime64(3, 'UTC')): expected ISO 8601"),
        ({"policy": True}, "'policy' (String): expected a string"),
    ],
)
def test_bad_parameters_are_refused_naming_them(catalog: QueryCatalog, params: dict[str, object], message: str) -> None:
    with pytest.raises(QueryParamError) as err:
        catalog.get("ttft_by_policy").bind(params, NOW)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("now-15m", NOW - timedelta(minutes=15)),
        ("now - 2h", NOW - timedelta(hours=2)),
        ("now+1d", NOW + timedelta(days=1)),
        ("now-1w", NOW - timedelta(weeks=1)),
        ("2026-05-01 10:00:00", datetime(2026, 5, 1, 10, tzinfo=UTC)),
        ("2026-05-01T12:00:00+02:00", datetime(2026, 5, 1, 10, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_time_forms(text: object, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


def test_unsupported_parameter_type_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad_type.sql"
    path.write_text("-- x\n-- @param a = 1  -- a\nSELECT {a:Array(UInt8)}\n")
    with pytest.raises(HistoryConfigError, match="unsupported parameter type"):
        parse_query_file(path)


def test_undeclared_parameter_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "undeclared.sql"
    path.write_text("-- x\nSELECT {a:UInt8}\n")
    with pytest.raises(HistoryConfigError, match=r"do not match the SQL's parameters \['a'\]"):
        parse_query_file(path)


def test_required_parameter_must_be_given(tmp_path: Path) -> None:
    path = tmp_path / "needs_a.sql"
    path.write_text("-- x\n-- @param a  -- the a\nSELECT {a:UInt8}\n")
    query = parse_query_file(path)
    with pytest.raises(QueryParamError, match="needs parameter 'a'"):
        query.bind({}, NOW)
    assert query.bind({"a": 3}, NOW) == {"a": 3}


def test_coerce_float_and_int_edges() -> None:
    assert coerce("x", "Float64", "1.5", NOW) == 1.5
    assert coerce("x", "Int8", -128, NOW) == -128
    with pytest.raises(QueryParamError, match="outside"):
        coerce("x", "Int8", 128, NOW)


def test_grafana_form_replaces_every_parameter(catalog: QueryCatalog) -> None:
    for query in catalog:
        sql = grafana_sql(query)
        assert placeholders(sql) == {}, query.name
    sql = grafana_sql(catalog.get("ttft_by_policy"))
    assert "ts >= $__fromTime_ms AND ts < $__toTime_ms" in sql
    assert "toIntervalSecond($__interval_s)" in sql
    assert "('${policy}' = '' OR policy = '${policy}')" in sql
    assert "LIMIT ${limit} OFFSET ${offset}" in grafana_sql(catalog.get("decisions_outcomes"))
