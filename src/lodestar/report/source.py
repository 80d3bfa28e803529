"""Where ``lodestar report`` reads the named history queries: a running history service (its
``POST /query``) or, when none runs, a chDB directory opened directly.

chDB allows one process per directory: while ``lodestar history serve`` holds it, opening it
fails, and the error says to use the service's URL instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from lodestar_history.client import HistoryClient, HistoryClientError
from lodestar_history.params import QueryParamError
from lodestar_history.queries import QueryCatalog, UnknownQueryError
from lodestar_history.rows import TABLES
from lodestar_history.settings import HistorySettings
from lodestar_history.store import HistoryStore, StoreUnavailableError
from lodestar_history.target import HistoryConfigError, parse_target


class ReportSourceError(RuntimeError):
    """The history cannot be read (unreachable, locked, missing, refused query); says what to do."""


@dataclass(frozen=True)
class Rows:
    """A query's answer: column names and one dict per row (times as datetimes or ISO text)."""

    columns: tuple[str, ...]
    rows: list[dict[str, Any]]


class HistorySource(Protocol):
    def describe(self) -> str: ...

    def params_of(self, query: str) -> set[str]: ...

    def run(self, query: str, params: Mapping[str, Any]) -> Rows: ...

    def close(self) -> None: ...


class ApiSource:
    """A running history service at ``url``; the constructor checks that it answers."""

    def __init__(self, url: str, timeout_s: float = 60.0) -> None:
        self._client = HistoryClient(url, timeout_s=timeout_s)
        try:
            health = self._client.health()
            self._params = {q["name"]: {p["name"] for p in q["params"]} for q in self._client.queries()}
        except HistoryClientError as exc:
            raise ReportSourceError(
                f"{exc} — or, if no service runs, read its chDB directory with --chdb DIR"
                if exc.status_code is None
                else f"history service at {url}: {exc}"
            ) from None
        if health.get("clickhouse") == "unreachable":
            raise ReportSourceError(f"the history service at {url} cannot reach ClickHouse ({health.get('target')})")
        self.url = url

    def describe(self) -> str:
        return f"history service {self.url}"

    def params_of(self, query: str) -> set[str]:
        if query not in self._params:
            raise ReportSourceError(f"the history service at {self.url} has no query {query!r}")
        return self._params[query]

    def run(self, query: str, params: Mapping[str, Any]) -> Rows:
        try:
            answer = self._client.query(query, params)
        except HistoryClientError as exc:
            raise ReportSourceError(f"query {query!r}: {exc}") from None
        return Rows(tuple(c["name"] for c in answer["columns"]), list(answer["rows"]))

    def close(self) -> None:
        return None


class ChdbSource:
    """The history database in a chDB directory, opened by this process (no service may hold it)."""

    def __init__(self, directory: Path, catalog: QueryCatalog, database: str = "lodestar") -> None:
        if not directory.is_dir():
            raise ReportSourceError(f"no chDB directory at {directory} (the history service's LODESTAR_HISTORY_…_DSN)")
        settings = HistorySettings(clickhouse_dsn=f"chdb://{directory.resolve()}", clickhouse_database=database)
        try:
            self._store = HistoryStore(parse_target(settings))
            self._store.open()
        except StoreUnavailableError as exc:
            raise ReportSourceError(
                f"{exc} — while `lodestar history serve` runs, read through it instead: --url http://HOST:8090"
            ) from None
        except HistoryConfigError as exc:
            raise ReportSourceError(str(exc)) from None
        tables = {str(r[0]) for r in self._store.reader.query("SHOW TABLES").result_rows}
        missing = sorted(set(TABLES) - tables)
        if missing:
            self._store.close()
            raise ReportSourceError(
                f"{directory} (database {database}) has no history tables {missing}; "
                "is it a history directory? (`lodestar history migrate` creates them)"
            )
        self._catalog = catalog
        self.directory = directory

    def describe(self) -> str:
        return f"chDB directory {self.directory}"

    def params_of(self, query: str) -> set[str]:
        try:
            return {p.name for p in self._catalog.get(query).params}
        except UnknownQueryError as exc:
            raise ReportSourceError(str(exc)) from None

    def run(self, query: str, params: Mapping[str, Any]) -> Rows:
        try:
            named = self._catalog.get(query)
            bound = named.bind(params, datetime.now(UTC))
        except (UnknownQueryError, QueryParamError) as exc:
            raise ReportSourceError(f"query {query!r}: {exc}") from None
        result = self._store.query(named.sql, bound)
        return Rows(result.columns, [dict(zip(result.columns, row, strict=True)) for row in result.rows])

    def close(self) -> None:
        self._store.close()
