"""The ClickHouse side of one history process: its clients, DDL, inserts and reads.

Three clients on one target: a writer (sink inserts, DDL), a reader (named queries) and,
only when raw SQL is enabled, a ``readonly=1`` client. Separate clients keep a long insert
from delaying the API. With chDB they are handles on the one engine this process owns (the
directory is locked against other processes); with a server they are HTTP connection pools.
Methods block: call them through ``asyncio.to_thread`` from async code. Each client
serialises its own calls, so the store may be used from several threads.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

from lodestar_history.migrate import Migration, MigrationReport, migrate
from lodestar_history.target import ClickHouseTarget


class StoreUnavailableError(RuntimeError):
    """ClickHouse cannot be reached or opened; the message names the target and the cause."""


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    types: tuple[str, ...]
    rows: list[Sequence[Any]]
    elapsed_s: float


class HistoryStore:
    """Owns the clients for ``target``; :meth:`open` before use, :meth:`close` at the end."""

    def __init__(self, target: ClickHouseTarget, raw_sql_timeout_s: int = 30) -> None:
        self.target = target
        self.raw_sql_timeout_s = raw_sql_timeout_s
        self._writer: Client | None = None
        self._reader: Client | None = None
        self._raw: Client | None = None
        self._raw_lock = threading.Lock()

    def open(self) -> None:
        """Connect, and create the database if needed. Idempotent."""
        if self._writer is not None:
            return
        if self.target.path is not None:
            self.target.path.mkdir(parents=True, exist_ok=True)
        writer = self._client(None)
        try:
            writer.command(f"CREATE DATABASE IF NOT EXISTS {self.target.database}")
            writer.database = self.target.database
            self._reader = self._client(self.target.database)
        except BaseException:
            writer.close()
            raise
        self._writer = writer

    def close(self) -> None:
        for client in (self._raw, self._reader, self._writer):
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()
        self._raw = self._reader = self._writer = None

    def migrate(self, migrations: list[Migration], params: Mapping[str, Any]) -> MigrationReport:
        return migrate(self.writer, migrations, params)

    def insert(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (values in ``columns`` order) into ``table`` as one block."""
        self.writer.insert(table, rows, column_names=list(columns))

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        """Run a SELECT on the reader client with server-side ``{name:Type}`` parameters."""
        return self._select(self.reader, sql, parameters)

    def query_readonly(self, sql: str) -> QueryResult:
        """Run ``sql`` on the ``readonly=1`` client (the engine refuses writes and table functions)."""
        with self._raw_lock:
            if self._raw is None:
                settings = {"max_execution_time": self.raw_sql_timeout_s, "readonly": 1}
                self._raw = self._client(self.target.database, settings)
            raw = self._raw
        return self._select(raw, sql, None)

    def ping(self) -> bool:
        client = self._reader
        if client is None:
            return False
        try:
            return bool(client.ping())
        except Exception:
            return False

    @property
    def writer(self) -> Client:
        if self._writer is None:
            raise RuntimeError("HistoryStore.open() was not called")
        return self._writer

    @property
    def reader(self) -> Client:
        if self._reader is None:
            raise RuntimeError("HistoryStore.open() was not called")
        return self._reader

    def _select(self, client: Client, sql: str, parameters: Mapping[str, Any] | None) -> QueryResult:
        start = time.perf_counter()
        params = dict(parameters) if parameters else None
        result = client.query(sql, parameters=params)
        columns = tuple(result.column_names)
        types = tuple(t.name for t in result.column_types)
        rows = list(result.result_rows)
        if not columns and not rows:
            # An empty result carries no header (chDB's Native output is zero bytes): ask the
            # engine for the columns without running the query.
            described = client.query(f"DESCRIBE TABLE ({sql}\n)", parameters=params).result_rows
            columns = tuple(str(r[0]) for r in described)
            types = tuple(str(r[1]) for r in described)
        return QueryResult(columns, types, rows, time.perf_counter() - start)

    def _client(self, database: str | None, settings: dict[str, Any] | None = None) -> Client:
        kwargs = self.target.client_kwargs(database)
        if settings:
            kwargs["settings"] = settings
        try:
            return clickhouse_connect.get_client(**kwargs)
        except (ClickHouseError, OSError) as exc:
            raise StoreUnavailableError(_explain(self.target, exc)) from None


def _explain(target: ClickHouseTarget, exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if target.kind == "chdb" and ("lock" in text.lower() or "Unable to open the chdb engine" in text):
        return (
            f"cannot open {target.describe()}: the directory is in use by another process "
            f"(chDB allows one process per directory; is `lodestar history serve` running?): {text}"
        )
    if isinstance(exc, OperationalError):
        return f"cannot reach ClickHouse at {target.describe()}: {text}"
    return f"cannot open ClickHouse at {target.describe()}: {text}"
