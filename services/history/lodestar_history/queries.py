"""Named queries: one ``.sql`` file each under ``infra/clickhouse/queries/``.

A file starts with a comment header, then plain ClickHouse SQL whose ``{name:Type}``
parameters can back a Grafana panel unchanged::

    -- One-line description.
    -- More description lines.
    -- @param from_ts = now-1h  -- start of the range (inclusive)
    -- @param policy = ''  -- only this policy ('' = every policy)
    SELECT … WHERE ts >= {from_ts:DateTime64(3, 'UTC')} AND …

Every placeholder needs an ``@param`` line and vice versa; a parameter without ``= default``
is required. Every query reads its tables with ``FINAL`` (deduplicated by event id).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from lodestar_history.params import QueryParamError, coerce, python_kind
from lodestar_history.sqltext import placeholders, substitute
from lodestar_history.target import HistoryConfigError

_PARAM_LINE = re.compile(r"^--\s*@param\s+([A-Za-z_][A-Za-z0-9_]*)\s*(?:=\s*(.*?))?\s+--\s+(.+)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class UnknownQueryError(KeyError):
    """No named query has this name; ``str()`` lists the known ones."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown query {self.name!r}; known: {', '.join(self.known)}"


@dataclass(frozen=True)
class QueryParam:
    name: str
    ch_type: str
    default: str | None
    description: str

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True)
class NamedQuery:
    name: str
    description: str
    sql: str
    params: tuple[QueryParam, ...]

    def bind(self, given: Mapping[str, object], now: datetime) -> dict[str, object]:
        """Typed values for every parameter: given ones coerced, the rest from defaults.

        QueryParamError for an unknown parameter, a missing required one or a bad value.
        """
        known = {p.name for p in self.params}
        unknown = sorted(set(given) - known)
        if unknown:
            raise QueryParamError(
                f"query {self.name!r} has no parameter(s) {unknown}; parameters: {sorted(known) or 'none'}"
            )
        out: dict[str, object] = {}
        for param in self.params:
            if param.name in given and given[param.name] is not None:
                raw = given[param.name]
            elif param.default is not None:
                raw = param.default
            else:
                raise QueryParamError(f"query {self.name!r} needs parameter {param.name!r} ({param.description})")
            out[param.name] = coerce(param.name, param.ch_type, raw, now)
        return out


#: Grafana ClickHouse data source (v4) macros standing in for the range and bucket parameters.
GRAFANA_MACROS = {"from_ts": "$__fromTime_ms", "to_ts": "$__toTime_ms", "bucket_s": "$__interval_s"}


def grafana_sql(query: NamedQuery) -> str:
    """``query``'s SQL for a Grafana panel: range/bucket parameters become the data source's
    macros, the others dashboard variables (``'${policy}'`` for strings, ``${limit}`` for numbers)."""

    def replace(name: str, ch_type: str) -> str:
        if name in GRAFANA_MACROS:
            return GRAFANA_MACROS[name]
        return f"'${{{name}}}'" if ch_type == "String" else f"${{{name}}}"

    sql: str = substitute(query.sql, replace)
    return sql


def parse_query_file(path: Path) -> NamedQuery:
    """The named query in ``path``; HistoryConfigError naming the file and the problem."""
    name = path.stem
    if not _NAME.match(name):
        raise HistoryConfigError(f"{path}: query names are lower_snake_case")
    text = path.read_text(encoding="utf-8")
    description: list[str] = []
    declared: dict[str, tuple[str | None, str]] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            break
        match = _PARAM_LINE.match(stripped)
        if match:
            pname, default, pdesc = match.groups()
            declared[pname] = (_unquote(default) if default is not None else None, pdesc.strip())
        elif "@param" in stripped:
            raise HistoryConfigError(f"{path}: bad @param line {stripped!r} (-- @param name [= default]  -- text)")
        elif not declared:
            description.append(stripped.lstrip("-").strip())
    try:
        slots = placeholders(text)
    except ValueError as exc:
        raise HistoryConfigError(f"{path}: {exc}") from None
    if set(slots) != set(declared):
        raise HistoryConfigError(
            f"{path}: @param lines {sorted(declared)} do not match the SQL's parameters {sorted(slots)}"
        )
    params = []
    for pname, (default, pdesc) in declared.items():
        try:
            python_kind(slots[pname])
        except ValueError as exc:
            raise HistoryConfigError(f"{path}: parameter {pname!r}: {exc}") from None
        params.append(QueryParam(pname, slots[pname], default, pdesc))
    return NamedQuery(name, " ".join(d for d in description if d), text, tuple(params))


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    return value


class QueryCatalog:
    """The named queries of one directory, by name."""

    def __init__(self, queries: Mapping[str, NamedQuery]) -> None:
        self._queries = dict(sorted(queries.items()))

    @classmethod
    def load(cls, directory: Path) -> QueryCatalog:
        if not directory.is_dir():
            raise HistoryConfigError(f"named-query directory {str(directory)!r} does not exist")
        queries = {q.name: q for q in (parse_query_file(p) for p in sorted(directory.glob("*.sql")))}
        if not queries:
            raise HistoryConfigError(f"no .sql files in {directory}")
        return cls(queries)

    def get(self, name: str) -> NamedQuery:
        try:
            return self._queries[name]
        except KeyError:
            raise UnknownQueryError(name, self.names()) from None

    def names(self) -> list[str]:
        return list(self._queries)

    def __iter__(self) -> Iterator[NamedQuery]:
        return iter(self._queries.values())
