"""What Grafana and the ClickHouse data source do to a panel's SQL before ClickHouse sees it.

1. The browser interpolates dashboard variables (Grafana's template service): ``$name``,
   ``${name}``, ``${name:format}``, ``[[name]]``; unknown names are left as they are, so the
   plugin's ``$__…`` macros survive. Single-valued variables are inserted as they are (the
   plugin's formatter only quotes multi-value arrays); the built-ins ``$__interval``,
   ``$__interval_ms``, ``$__from``, ``$__to`` come from the request.
2. The plugin backend expands its macros (grafana/clickhouse-datasource ``pkg/macros/macros.go``)
   with grafana-plugin-sdk-go's ``sqlutil.Interpolate``: a macro is ``$__name`` at a word
   boundary, its arguments a bracketed list *immediately* after the name (the SDK's
   ``parseArgs``; older SDKs swallowed the next bracket anywhere later in the query).

=====================  ==========================================================
``$__fromTime``        ``toDateTime(<from, unix s>)``
``$__toTime``          ``toDateTime(<to, unix s>)``
``$__fromTime_ms``     ``fromUnixTimestamp64Milli(<from, unix ms>)``
``$__toTime_ms``       ``fromUnixTimestamp64Milli(<to, unix ms>)``
``$__timeFilter(c)``   ``c >= toDateTime(<from>) AND c <= toDateTime(<to>)``
``$__timeFilter_ms(c)`` the same with ``fromUnixTimestamp64Milli``
``$__dateFilter(c)``   ``c >= toDate('<from date>') AND c <= toDate('<to date>')``
``$__dateTimeFilter(d, t)`` / ``$__dt`` ``(<dateFilter(d)>) AND (<timeFilter(t)>)``
``$__timeInterval(c)`` ``toStartOfInterval(toDateTime(c), INTERVAL <s> second)``
``$__timeInterval_ms(c)`` ``toStartOfInterval(toDateTime64(c, 3), INTERVAL <ms> millisecond)``
``$__interval_s``      ``<interval in whole seconds, at least 1>``
``$__timeFrom(c)``     ``c >= '<from RFC 3339>'`` (SDK default)
``$__timeTo(c)``       ``c <= '<to RFC 3339>'`` (SDK default)
=====================  ==========================================================

The interval is Grafana's: ``max(roundInterval(range / maxDataPoints), panel min interval)``
(``@grafana/data`` ``rangeutil``). Pure functions, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

_TEMPLATE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")
_LEFTOVER = re.compile(r"\$__(\w+)")

# roundInterval of @grafana/data: (upper bound ms, rounded ms), then 1 year.
_ROUND_MS = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1500, 1000),
    (3500, 2000),
    (7500, 5000),
    (12500, 10000),
    (17500, 15000),
    (25000, 20000),
    (45000, 30000),
    (90000, 60000),
    (210000, 120000),
    (450000, 300000),
    (750000, 600000),
    (1050000, 900000),
    (1500000, 1200000),
    (2700000, 1800000),
    (5400000, 3600000),
    (9000000, 7200000),
    (16200000, 10800000),
    (32400000, 21600000),
    (86400000, 43200000),
    (604800000, 86400000),
    (1814400000, 604800000),
    (3628800000, 2592000000),
)
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000, "y": 31_536_000_000}


class MacroError(ValueError):
    """A macro with the wrong arguments, an unclosed bracket or an unknown ``$__`` macro."""


@dataclass(frozen=True)
class QueryContext:
    """One panel query as Grafana sends it: range (tz-aware), interval and variable values."""

    from_ts: datetime
    to_ts: datetime
    interval_ms: int
    variables: Mapping[str, str] = field(default_factory=dict)


def round_interval_ms(interval_ms: float) -> int:
    for bound, rounded in _ROUND_MS:
        if interval_ms < bound:
            return rounded
    return 31_536_000_000


def parse_duration_ms(text: str) -> int:
    """``"30s"`` → 30000 (Grafana interval syntax; a bare number is seconds); ValueError."""
    match = re.fullmatch(r"\s*(\d+)\s*(ms|s|m|h|d|w|y)?\s*", text)
    if not match:
        raise ValueError(f"bad interval {text!r} (e.g. 10s, 1m)")
    return int(match.group(1)) * _UNIT_MS[match.group(2) or "s"]


def grafana_interval_ms(from_ts: datetime, to_ts: datetime, max_data_points: int, min_interval: str | None) -> int:
    """The ``$__interval`` Grafana computes for a panel."""
    range_ms = max((to_ts - from_ts).total_seconds() * 1000.0, 0.0)
    interval = round_interval_ms(range_ms / max(max_data_points, 1))
    if min_interval:
        interval = max(interval, parse_duration_ms(min_interval))
    return interval


def variable_names(text: str) -> set[str]:
    """Names of the dashboard variables ``text`` refers to (built-ins ``__…`` excluded)."""
    names = set()
    for match in _TEMPLATE.finditer(text):
        name = match.group(1) or match.group(2) or match.group(4)
        if name and not name.startswith("__"):
            names.add(name)
    return names


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """Grafana's template service on single-valued variables: known names replaced, the rest kept."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        return values[name] if name in values else match.group(0)

    return _TEMPLATE.sub(replace, text)


def _parse_args(rest: str) -> tuple[list[str], int]:
    """Arguments of a bracketed list at the start of ``rest`` and its length; ([], 0) if none."""
    if not rest.startswith("("):
        return [], 0
    depth = 0
    args: list[str] = []
    current: list[str] = []
    for i, ch in enumerate(rest):
        if ch == "(":
            depth += 1
            if depth == 1:
                continue
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append("".join(current).strip())
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    raise MacroError("failed to parse macro arguments (missing close bracket?)")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def unix_ms(t: datetime) -> int:
    """Milliseconds since the epoch, truncated like Go's ``Time.UnixMilli``."""
    return (t - _EPOCH) // timedelta(milliseconds=1)


def _date_time(t: datetime) -> str:
    return f"toDateTime({unix_ms(t) // 1000})"


def _date_time64(t: datetime) -> str:
    return f"fromUnixTimestamp64Milli({unix_ms(t)})"


def _date(t: datetime) -> str:
    return f"toDate('{t.astimezone(UTC):%Y-%m-%d}')"


def _rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _args(name: str, args: list[str], count: int) -> list[str]:
    if len(args) != count:
        raise MacroError(f"$__{name}: expected {count} argument(s), received {len(args)}")
    return args


def _macros(ctx: QueryContext) -> dict[str, Callable[[list[str]], str]]:
    f, t = ctx.from_ts, ctx.to_ts
    seconds = max(ctx.interval_ms // 1000, 1)
    millis = max(ctx.interval_ms, 1)

    def time_filter(a: list[str]) -> str:
        c = _args("timeFilter", a, 1)[0]
        return f"{c} >= {_date_time(f)} AND {c} <= {_date_time(t)}"

    def time_filter_ms(a: list[str]) -> str:
        c = _args("timeFilter_ms", a, 1)[0]
        return f"{c} >= {_date_time64(f)} AND {c} <= {_date_time64(t)}"

    def date_filter(a: list[str]) -> str:
        c = _args("dateFilter", a, 1)[0]
        return f"{c} >= {_date(f)} AND {c} <= {_date(t)}"

    def date_time_filter(a: list[str]) -> str:
        d, c = _args("dateTimeFilter", a, 2)
        dates = f"({d} >= {_date(f)} AND {d} <= {_date(t)})"
        return f"{dates} AND ({c} >= {_date_time(f)} AND {c} <= {_date_time(t)})"

    return {
        "fromTime": lambda a: _date_time(f),
        "toTime": lambda a: _date_time(t),
        "fromTime_ms": lambda a: _date_time64(f),
        "toTime_ms": lambda a: _date_time64(t),
        "timeFilter": time_filter,
        "timeFilter_ms": time_filter_ms,
        "dateFilter": date_filter,
        "dateTimeFilter": date_time_filter,
        "dt": date_time_filter,
        "timeInterval": lambda a: (
            f"toStartOfInterval(toDateTime({_args('timeInterval', a, 1)[0]}), INTERVAL {seconds} second)"
        ),
        "timeInterval_ms": lambda a: (
            f"toStartOfInterval(toDateTime64({_args('timeInterval_ms', a, 1)[0]}, 3), INTERVAL {millis} millisecond)"
        ),
        "interval_s": lambda a: str(seconds),
        "timeFrom": lambda a: f"{_args('timeFrom', a, 1)[0]} >= '{_rfc3339(f)}'",
        "timeTo": lambda a: f"{_args('timeTo', a, 1)[0]} <= '{_rfc3339(t)}'",
    }


def expand_macros(sql: str, ctx: QueryContext) -> str:
    """``sql`` with the plugin's macros expanded; MacroError for bad arguments or unknown macros.

    The SDK replaces every occurrence of a match's *text*, macro by macro in Go map order
    (random): with both ``$__fromTime`` and ``$__fromTime_ms`` in one query, the result
    depends on that order (``$__fromTime`` → ``toDateTime(…)`` can eat the start of
    ``$__fromTime_ms``). Such queries are refused here rather than expanded one way.
    """
    macros = _macros(ctx)
    present = {name for name in macros if re.search(rf"\$__{name}\b", sql)}
    clashes = sorted((a, b) for a in present for b in present if a != b and b.startswith(a))
    if clashes:
        a, b = clashes[0]
        raise MacroError(f"$__{a} and $__{b} in one query expand in random order in the plugin; use one of them")
    for name, macro in macros.items():
        pattern = re.compile(rf"\$__{name}\b")
        matches = []
        for match in pattern.finditer(sql):
            args, length = _parse_args(sql[match.end() :])
            matches.append((sql[match.start() : match.end() + length], args))
        for full, args in matches:
            sql = sql.replace(full, macro(args))
    leftover = sorted(set(_LEFTOVER.findall(sql)))
    if leftover:
        raise MacroError(f"unknown macro(s) {', '.join('$__' + m for m in leftover)}")
    return sql


def builtins(ctx: QueryContext) -> dict[str, str]:
    """Grafana's request-scoped variables the browser fills in."""
    ms = max(ctx.interval_ms, 1)
    text = f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"
    return {
        "__interval": text,
        "__interval_ms": str(ms),
        "__from": str(unix_ms(ctx.from_ts)),
        "__to": str(unix_ms(ctx.to_ts)),
    }


def expand(sql: str, ctx: QueryContext) -> str:
    """The SQL ClickHouse receives for ``sql`` in context ``ctx`` (browser, then plugin)."""
    return expand_macros(interpolate(sql, {**builtins(ctx), **ctx.variables}), ctx)
