"""SQL lexing: statement splitting, parameter discovery, the single-SELECT guard."""

from __future__ import annotations

import pytest

from lodestar_history.sqltext import UnsafeQueryError, ensure_single_select, placeholders, split_statements


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", ["SELECT 1"]),
        ("SELECT 1;\nSELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("-- only a comment;\n", []),
        ("SELECT ';' AS s; SELECT 2", ["SELECT ';' AS s", "SELECT 2"]),
        ("SELECT 1 -- a; comment\n; SELECT 2", ["SELECT 1 -- a; comment", "SELECT 2"]),
        ("SELECT $$a;b$$; SELECT 2", ["SELECT $$a;b$$", "SELECT 2"]),
        ("SELECT 'it''s;' ; SELECT 'a\\';'", ["SELECT 'it''s;'", "SELECT 'a\\';'"]),
    ],
    ids=["one", "two", "comment-only", "in-string", "in-comment", "heredoc", "escapes"],
)
def test_split_statements(sql: str, expected: list[str]) -> None:
    assert split_statements(sql) == expected


def test_placeholders_outside_strings_and_comments() -> None:
    sql = (
        "-- {nope:String}\nSELECT '{nope2:String}', {'k': 1} AS map"
        " WHERE a = {a:UInt32} AND t >= {t:DateTime64(3,  'UTC')} OR b = { a : UInt32 }"
    )
    assert placeholders(sql) == {"a": "UInt32", "t": "DateTime64(3, 'UTC')"}


def test_placeholder_with_two_types_is_an_error() -> None:
    with pytest.raises(ValueError, match="'a' has two types"):
        placeholders("SELECT {a:UInt32}, {a:String}")


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", "SELECT 1"),
        ("  select * from route_decisions FINAL;  ", "select * from route_decisions FINAL"),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH x AS (SELECT 1) SELECT * FROM x"),
        ("SELECT 1; -- trailing comment", "SELECT 1"),
        ("SELECT * FROM (SELECT 'into; format' AS s)", "SELECT * FROM (SELECT 'into; format' AS s)"),
    ],
    ids=["plain", "trailing-semicolon", "with", "trailing-comment", "keywords-in-strings"],
)
def test_single_select_is_accepted(sql: str, expected: str) -> None:
    assert ensure_single_select(sql) == expected


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("", "empty"),
        ("-- nothing", "empty"),
        ("INSERT INTO t VALUES (1)", "only SELECT"),
        ("DROP TABLE route_decisions", "only SELECT"),
        ("ALTER TABLE t DELETE WHERE 1", "only SELECT"),
        ("SYSTEM STOP MERGES", "only SELECT"),
        ("SET readonly = 0", "only SELECT"),
        ("SELECT 1; DROP TABLE t", "one statement"),
        ("SELECT 1; SELECT 2", "one statement"),
        ("SELECT $$ ' $$; DROP TABLE t; --'", "one statement"),
        ("SELECT 1 /* x */; /* y */ SELECT 2", "one statement"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO"),
        ("SELECT 1 FORMAT JSON", "FORMAT"),
        ("SELECT * FROM file('/etc/passwd', 'LineAsString')", "table functions"),
        ("SELECT * FROM url ('http://x', 'CSV', 'a Int8')", "table functions"),
        ("SELECT * FROM t JOIN remote('h', system.one) AS r ON 1", "table functions"),
        ("SELECT * FROM `file`('/etc/passwd')", "table functions"),
        ("(SELECT 1)", "only SELECT"),
    ],
)
def test_anything_but_one_select_is_refused(sql: str, reason: str) -> None:
    with pytest.raises(UnsafeQueryError, match=reason):
        ensure_single_select(sql)
