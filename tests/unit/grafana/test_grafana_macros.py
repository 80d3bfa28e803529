"""Macro expansion as the ClickHouse data source plugin does it (grafana/clickhouse-datasource
pkg/macros/macros.go, argument parsing of grafana-plugin-sdk-go sqlutil), and variable
interpolation as Grafana's template service does it. Table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lodestar.grafana.macros import (
    MacroError,
    QueryContext,
    expand,
    expand_macros,
    grafana_interval_ms,
    interpolate,
    parse_duration_ms,
    round_interval_ms,
    variable_names,
)

FROM = datetime(2026, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
TO = datetime(2026, 5, 1, 11, 0, 0, 456000, tzinfo=UTC)
F_S, T_S = 1777629600, 1777633200
F_MS, T_MS = 1777629600123, 1777633200456
DATES = "(d >= toDate('2026-05-01') AND d <= toDate('2026-05-01'))"
CTX = QueryContext(FROM, TO, interval_ms=30_000, variables={"policy": "lodestar", "limit": "100"})

CASES = [
    ("$__fromTime", f"toDateTime({F_S})"),
    ("$__toTime", f"toDateTime({T_S})"),
    ("$__fromTime_ms", f"fromUnixTimestamp64Milli({F_MS})"),
    ("$__toTime_ms", f"fromUnixTimestamp64Milli({T_MS})"),
    ("$__timeFilter(ts)", f"ts >= toDateTime({F_S}) AND ts <= toDateTime({T_S})"),
    (
        "$__timeFilter_ms(ts)",
        f"ts >= fromUnixTimestamp64Milli({F_MS}) AND ts <= fromUnixTimestamp64Milli({T_MS})",
    ),
    ("$__dateFilter(d)", "d >= toDate('2026-05-01') AND d <= toDate('2026-05-01')"),
    ("$__dateTimeFilter(d, ts)", f"{DATES} AND (ts >= toDateTime({F_S}) AND ts <= toDateTime({T_S}))"),
    ("$__dt(d,ts)", f"{DATES} AND (ts >= toDateTime({F_S}) AND ts <= toDateTime({T_S}))"),
    ("$__timeInterval(ts)", "toStartOfInterval(toDateTime(ts), INTERVAL 30 second)"),
    ("$__timeInterval_ms(ts)", "toStartOfInterval(toDateTime64(ts, 3), INTERVAL 30000 millisecond)"),
    ("$__interval_s", "30"),
    ("$__timeFrom(ts)", "ts >= '2026-05-01T10:00:00Z'"),
    ("$__timeTo(ts)", "ts <= '2026-05-01T11:00:00Z'"),
    # arguments only when the bracket follows the name at once (sdk parseArgs; sqlds#82)
    (
        "ts >= $__fromTime_ms AND ts < $__toTime_ms\n  AND (x = '' OR y = 1)",
        f"ts >= fromUnixTimestamp64Milli({F_MS}) AND ts < fromUnixTimestamp64Milli({T_MS})\n  AND (x = '' OR y = 1)",
    ),
    ("toIntervalSecond($__interval_s)) AS t", "toIntervalSecond(30)) AS t"),
    ("$__interval_s*(a + b)", "30*(a + b)"),
    (
        "$__timeFilter(toDateTime(ts, 'UTC'))",
        f"toDateTime(ts, 'UTC') >= toDateTime({F_S}) AND toDateTime(ts, 'UTC') <= toDateTime({T_S})",
    ),
    # a longer macro is not matched by a shorter one (word boundary)
    ("$__fromTime_ms $__toTime", f"fromUnixTimestamp64Milli({F_MS}) toDateTime({T_S})"),
    ("SELECT 1", "SELECT 1"),
]


@pytest.mark.parametrize(("sql", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_plugin_macro_expansion(sql: str, expected: str) -> None:
    assert expand_macros(sql, CTX) == expected


def test_interval_s_is_at_least_one_second() -> None:
    ctx = QueryContext(FROM, TO, interval_ms=200)
    assert expand_macros("$__interval_s", ctx) == "1"
    assert (
        expand_macros("$__timeInterval_ms(ts)", ctx)
        == "toStartOfInterval(toDateTime64(ts, 3), INTERVAL 200 millisecond)"
    )


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("$__nope", "unknown macro(s) $__nope"),
        ("$__timeFilter(ts", "missing close bracket"),
        ("$__timeFilter(a, b)", "expected 1 argument(s), received 2"),
        ("$__dateTimeFilter(a)", "expected 2 argument(s), received 1"),
        ("$__timeFilter", "expected 1 argument(s), received 0"),
        # the SDK replaces the text of a match everywhere, macro by macro in random order
        ("$__fromTime_ms AND $__fromTime", "$__fromTime and $__fromTime_ms in one query expand in random order"),
    ],
)
def test_macro_errors(sql: str, message: str) -> None:
    with pytest.raises(MacroError, match=message.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")):
        expand_macros(sql, CTX)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("'${policy}'", "'lodestar'"),
        ("$policy", "lodestar"),
        ("[[policy]]", "lodestar"),
        ("${policy:raw}", "lodestar"),
        ("LIMIT ${limit}", "LIMIT 100"),
        ("${unknown} $other", "${unknown} $other"),
        ("$__interval_s $__fromTime_ms", "$__interval_s $__fromTime_ms"),  # left for the plugin
        ("$policyx", "$policyx"),  # another (unknown) variable name, not $policy + x
    ],
)
def test_template_interpolation(text: str, expected: str) -> None:
    assert interpolate(text, {"policy": "lodestar", "limit": "100"}) == expected


def test_builtins_are_interpolated_before_the_plugin_macros() -> None:
    sql = "SELECT $__interval, $__interval_ms, $__from, $__to, $__interval_s, '${policy}'"
    assert expand(sql, CTX) == f"SELECT 30s, 30000, {F_MS}, {T_MS}, 30, 'lodestar'"


def test_variable_names_skip_builtins() -> None:
    assert variable_names("$a ${b} [[c]] ${d:csv} $__interval $__timeFilter(ts) ${__from}") == {"a", "b", "c", "d"}


@pytest.mark.parametrize(
    ("interval_ms", "rounded"),
    [(5, 1), (12, 10), (900, 1000), (3600, 5000), (40_000, 30_000), (100_000, 120_000), (4_000_000, 3_600_000)],
)
def test_round_interval_follows_grafana(interval_ms: float, rounded: int) -> None:
    assert round_interval_ms(interval_ms) == rounded


def test_grafana_interval_for_a_panel() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert grafana_interval_ms(start, start + timedelta(hours=1), 1000, None) == 5000  # 3.6 s → 5 s
    assert grafana_interval_ms(start, start + timedelta(hours=1), 1000, "1m") == 60_000  # panel min interval
    assert grafana_interval_ms(start, start + timedelta(days=1), 100, None) == 900_000


def test_durations() -> None:
    assert parse_duration_ms("30s") == 30_000
    assert parse_duration_ms("5") == 5000
    assert parse_duration_ms("2h") == 7_200_000
    with pytest.raises(ValueError, match="bad interval"):
        parse_duration_ms("soon")
