"""The DDL on chDB: idempotent, matches the row mapping, retention is configurable."""

from __future__ import annotations

from pathlib import Path

import pytest

from lodestar_history.migrate import MigrationError, load_migrations, table_ttl_days
from lodestar_history.rows import COLUMNS, TABLES
from lodestar_history.settings import default_sql_dir
from lodestar_history.store import HistoryStore
from lodestar_history.target import HistoryConfigError

SQL_DIR = default_sql_dir()
PARAMS = {"retention_days": 30, "model_retention_days": 365}


def _tables(store: HistoryStore) -> dict[str, str]:
    rows = store.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase() ORDER BY name").rows
    return {str(name): str(engine) for name, engine in rows}


def test_migrations_run_in_file_name_order() -> None:
    names = [m.name for m in load_migrations(SQL_DIR)]
    assert names == sorted(names)
    assert len(names) == len(TABLES)


def test_applying_the_ddl_twice_changes_nothing(empty_store: HistoryStore) -> None:
    migrations = load_migrations(SQL_DIR)
    before = _tables(empty_store)  # already migrated once by the fixture
    report = empty_store.migrate(migrations, PARAMS)
    assert _tables(empty_store) == before
    assert report.retention_changes == []
    assert report.statements == len(TABLES)
    assert before == {t: "ReplacingMergeTree" for t in TABLES}


@pytest.mark.parametrize("table", TABLES)
def test_table_columns_match_the_row_mapping(history_dataset: HistoryStore, table: str) -> None:
    rows = history_dataset.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} ORDER BY position",
        {"t": table},
    ).rows
    assert tuple(r[0] for r in rows) == (*COLUMNS[table], "inserted_at")


@pytest.mark.parametrize("table", TABLES)
def test_sorting_key_ends_with_event_id_and_partitions_are_days(history_dataset: HistoryStore, table: str) -> None:
    sorting_key, partition_key = history_dataset.query(
        "SELECT sorting_key, partition_key FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
        {"t": table},
    ).rows[0]
    assert str(sorting_key).replace(" ", "").endswith("ts,event_id")
    assert partition_key == "toDate(ts)"


def test_retention_follows_the_settings(empty_store: HistoryStore) -> None:
    migrations = load_migrations(SQL_DIR)
    assert table_ttl_days(empty_store.writer, "route_decisions") == 30
    assert table_ttl_days(empty_store.writer, "model_updates") == 365
    report = empty_store.migrate(migrations, {"retention_days": 7, "model_retention_days": 90})
    assert sorted(report.retention_changes) == sorted(
        [(t, 30, 7) for t in TABLES if t != "model_updates"] + [("model_updates", 365, 90)]
    )
    assert table_ttl_days(empty_store.writer, "route_decisions") == 7
    assert table_ttl_days(empty_store.writer, "model_updates") == 90
    assert empty_store.migrate(migrations, {"retention_days": 7, "model_retention_days": 90}).retention_changes == []


def test_a_failing_statement_names_its_file(empty_store: HistoryStore, tmp_path: Path) -> None:
    (tmp_path / "001_ok.sql").write_text("CREATE TABLE IF NOT EXISTS ok_t (a UInt8) ENGINE = Memory;\n")
    (tmp_path / "002_bad.sql").write_text("CREATE TABLE IF NOT EXISTS bad_t (a NoSuchType) ENGINE = Memory;\n")
    with pytest.raises(MigrationError, match=r"002_bad\.sql: .*NoSuchType"):
        empty_store.migrate(load_migrations(tmp_path), PARAMS)


def test_ddl_parameters_are_inlined_as_integers_only(empty_store: HistoryStore) -> None:
    with pytest.raises(HistoryConfigError, match="'retention_days' must be a non-negative integer"):
        empty_store.migrate(load_migrations(SQL_DIR), {"retention_days": "30; DROP TABLE x", "model_retention_days": 1})
    with pytest.raises(HistoryConfigError, match="no value for parameter"):
        empty_store.migrate(load_migrations(SQL_DIR), {"retention_days": 30})
