"""Apply the DDL files of ``infra/clickhouse/`` in file-name order, every time, idempotently.

There is no migration ledger: every statement must be safe to run again (``CREATE TABLE IF NOT
EXISTS``, ``ADD COLUMN IF NOT EXISTS``…), and every file runs at every start. Retention is the
exception to "run again = no-op": a table's TTL is written once at creation, so when the
configured days differ from the table's, :func:`migrate` issues ``ALTER TABLE … MODIFY TTL``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lodestar_history.sqltext import placeholders, split_statements, substitute
from lodestar_history.target import HistoryConfigError

_CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+`?([A-Za-z_][A-Za-z0-9_]*)`?", re.IGNORECASE)
_TTL_PARAM = re.compile(r"toIntervalDay\(\s*\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*UInt32\s*\}\s*\)")
# How the server renders our TTL in system.tables.engine_full, with or without the _CAST.
_TTL_RENDERED = re.compile(r"TTL toDateTime\(ts\) \+ toIntervalDay\((?:_CAST\()?(\d+)")


class MigrationError(RuntimeError):
    """A DDL statement failed; the message names the file and ClickHouse's reason."""


class CommandClient(Protocol):
    def command(self, cmd: str, parameters: Any = None) -> Any: ...


@dataclass(frozen=True)
class Migration:
    """One DDL file: its statements, the tables it creates and their retention parameters."""

    name: str
    statements: tuple[str, ...]
    ttl_params: Mapping[str, str] = field(default_factory=dict)  # table → retention parameter


@dataclass
class MigrationReport:
    files: list[str] = field(default_factory=list)
    statements: int = 0
    retention_changes: list[tuple[str, int | None, int]] = field(default_factory=list)  # table, old, new


def load_migrations(sql_dir: Path) -> list[Migration]:
    """The ``*.sql`` files directly in ``sql_dir``, sorted by name."""
    if not sql_dir.is_dir():
        raise HistoryConfigError(f"LODESTAR_HISTORY_SQL_DIR {str(sql_dir)!r} is not a directory")
    migrations = []
    for path in sorted(sql_dir.glob("*.sql")):
        statements = tuple(split_statements(path.read_text(encoding="utf-8")))
        ttl: dict[str, str] = {}
        for statement in statements:
            table = _CREATE_TABLE.search(statement)
            param = _TTL_PARAM.search(statement)
            if table and param:
                ttl[table.group(1)] = param.group(1)
        migrations.append(Migration(path.name, statements, ttl))
    if not migrations:
        raise HistoryConfigError(f"no .sql files in {sql_dir}")
    return migrations


def migrate(client: CommandClient, migrations: list[Migration], params: Mapping[str, Any]) -> MigrationReport:
    """Run every statement (with the parameters it uses), then align TTLs with ``params``.

    ``client`` must already point at the target database. Raises HistoryConfigError when a
    statement uses a parameter ``params`` lacks.
    """
    report = MigrationReport()
    for migration in migrations:
        for statement in migration.statements:
            used = placeholders(statement)
            missing = sorted(set(used) - set(params))
            if missing:
                raise HistoryConfigError(f"{migration.name}: no value for parameter(s) {missing}")
            ddl = _inline(migration.name, statement, params)
            try:
                client.command(ddl)
            except Exception as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise MigrationError(f"{migration.name}: {first}") from exc
            report.statements += 1
        report.files.append(migration.name)
        for table, param in migration.ttl_params.items():
            wanted = int(params[param])
            current = table_ttl_days(client, table)
            if current != wanted:
                client.command(f"ALTER TABLE {table} MODIFY TTL toDateTime(ts) + toIntervalDay({wanted})")
                report.retention_changes.append((table, current, wanted))
    return report


def _inline(origin: str, statement: str, params: Mapping[str, Any]) -> str:
    """``statement`` with its ``{name:UIntN}`` parameters written as integer literals.

    DDL parameters are inlined client-side (they are validated integers) so the DDL never
    depends on a server accepting query parameters inside CREATE/ALTER.
    """

    def literal(name: str, ch_type: str) -> str:
        value = params[name]
        if not ch_type.startswith("UInt") or isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise HistoryConfigError(f"{origin}: parameter {name!r} must be a non-negative integer ({ch_type})")
        return str(value)

    inlined: str = substitute(statement, literal)
    return inlined


def table_ttl_days(client: CommandClient, table: str) -> int | None:
    """The retention in days of ``table``'s ``ts`` TTL in the current database, None if not found."""
    engine = client.command(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
        parameters={"t": table},
    )
    match = _TTL_RENDERED.search(str(engine))
    return int(match.group(1)) if match else None
