"""Lexing ClickHouse SQL text just enough to split statements, find ``{name:Type}`` parameters
and refuse anything but a single read-only SELECT. Pure functions, no I/O.

The lexer follows ClickHouse's own rules for what hides a ``;`` or a keyword: ``'…'`` strings
(backslash escapes, doubled quotes), ``"…"`` and `````…````` identifiers, ``$tag$…$tag$``
heredocs, ``--`` / ``#`` line comments and ``/* … */`` block comments. Where it cannot be sure it
errs towards rejecting (block comments are not nested, so a nested comment exposes its tail).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

TokenKind = Literal["word", "string", "ident", "number", "punct", "comment", "space"]

_HEREDOC = re.compile(r"\$([A-Za-z0-9_]*)\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9][A-Za-z0-9_.]*")
_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]+?)\s*\}", re.DOTALL)


class UnsafeQueryError(ValueError):
    """Raw SQL that is not exactly one read-only SELECT; the message says why."""


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str


def _quoted_end(sql: str, start: int, quote: str) -> int:
    """Index after the closing ``quote`` of the literal opened at ``start``; len(sql) if unclosed."""
    i = start + 1
    while i < len(sql):
        ch = sql[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            if i + 1 < len(sql) and sql[i + 1] == quote:
                i += 2
                continue
            return i + 1
        i += 1
    return len(sql)


def tokenize(sql: str) -> list[Token]:
    """Split ``sql`` into tokens; concatenating their texts gives ``sql`` back."""
    out: list[Token] = []
    i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            j = i
            while j < n and sql[j].isspace():
                j += 1
            out.append(Token("space", sql[i:j]))
        elif sql.startswith("--", i) or ch == "#":
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(Token("comment", sql[i:j]))
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(Token("comment", sql[i:j]))
        elif ch == "'":
            j = _quoted_end(sql, i, "'")
            out.append(Token("string", sql[i:j]))
        elif ch in '"`':
            j = _quoted_end(sql, i, ch)
            out.append(Token("ident", sql[i:j]))
        elif ch == "$" and (m := _HEREDOC.match(sql, i)):
            close = sql.find(m.group(0), m.end())
            j = n if close < 0 else close + len(m.group(0))
            out.append(Token("string", sql[i:j]))
        elif m := _WORD.match(sql, i):
            j = m.end()
            out.append(Token("word", sql[i:j]))
        elif m := _NUMBER.match(sql, i):
            j = m.end()
            out.append(Token("number", sql[i:j]))
        else:
            j = i + 1
            out.append(Token("punct", ch))
        i = j
    return out


def _code(tokens: list[Token]) -> list[Token]:
    return [t for t in tokens if t.kind not in ("space", "comment")]


def split_statements(sql: str) -> list[str]:
    """The statements of ``sql`` separated by ``;`` (comment-only pieces dropped), stripped."""
    statements: list[str] = []
    current: list[Token] = []
    for token in [*tokenize(sql), Token("punct", ";")]:
        if token.kind == "punct" and token.text == ";":
            if _code(current):
                statements.append("".join(t.text for t in current).strip())
            current = []
        else:
            current.append(token)
    return statements


def _placeholder_spans(tokens: list[Token]) -> list[tuple[int, int, str, str]]:
    """(first, last token index, name, normalised type) of every ``{name:Type}`` in code."""
    spans = []
    i = 0
    while i < len(tokens):
        if tokens[i].kind == "punct" and tokens[i].text == "{":
            j = next((k for k in range(i + 1, len(tokens)) if tokens[k].text == "}"), len(tokens))
            match = _PLACEHOLDER.fullmatch("".join(t.text for t in tokens[i : j + 1]))
            if match:
                spans.append((i, j, match.group(1), " ".join(match.group(2).split())))
            i = j
        i += 1
    return spans


def placeholders(sql: str) -> dict[str, str]:
    """``{name:Type}`` query parameters outside strings and comments: name → ClickHouse type.

    Raises ValueError when one name is used with two different types.
    """
    found: dict[str, str] = {}
    for _, _, name, ch_type in _placeholder_spans([t for t in tokenize(sql) if t.kind != "comment"]):
        if found.setdefault(name, ch_type) != ch_type:
            raise ValueError(f"parameter {name!r} has two types: {found[name]!r} and {ch_type!r}")
    return found


def substitute(sql: str, replace: Callable[[str, str], str]) -> str:
    """``sql`` with every ``{name:Type}`` outside strings and comments replaced by ``replace(name, type)``."""
    tokens = tokenize(sql)
    out: list[str] = []
    last = 0
    for first, end, name, ch_type in _placeholder_spans(tokens):
        out.extend(t.text for t in tokens[last:first])
        out.append(replace(name, ch_type))
        last = end + 1
    out.extend(t.text for t in tokens[last:])
    return "".join(out)


_FORBIDDEN_WORDS = {"INTO", "FORMAT", "OUTFILE", "INFILE"}
_SOURCE_WORDS = {"FROM", "JOIN"}


def ensure_single_select(sql: str) -> str:
    """``sql`` without trailing ``;`` if it is one SELECT (or WITH … SELECT) statement.

    Refused: several statements, anything not starting with SELECT/WITH, ``INTO OUTFILE``,
    ``FORMAT`` (the client chooses the format) and table functions (``FROM file(…)``,
    ``JOIN url(…)``), which read files or the network. The engine-side guard is the
    ``readonly=1`` setting of the client that runs it; this check is the first line.
    """
    tokens = tokenize(sql)
    code = _code(tokens)
    while code and code[-1].kind == "punct" and code[-1].text == ";":
        code.pop()
    if not code:
        raise UnsafeQueryError("empty query")
    if any(t.kind == "punct" and t.text == ";" for t in code):
        raise UnsafeQueryError("only one statement is allowed")
    first = code[0].text.upper() if code[0].kind == "word" else code[0].text
    if first not in ("SELECT", "WITH"):
        raise UnsafeQueryError(f"only SELECT queries are allowed, not {first!r}")
    for i, token in enumerate(code):
        if token.kind != "word":
            continue
        word = token.text.upper()
        if word in _FORBIDDEN_WORDS:
            raise UnsafeQueryError(f"{word} is not allowed")
        if word in _SOURCE_WORDS and i + 2 < len(code):
            source, after = code[i + 1], code[i + 2]
            if source.kind in ("word", "ident") and after.kind == "punct" and after.text == "(":
                raise UnsafeQueryError(f"table functions are not allowed ({source.text}(…))")
    # Everything up to the last code token: trailing ``;`` and comments are dropped, so the
    # client's own FORMAT clause can never end up in a second statement or a comment.
    last = max(i for i, t in enumerate(tokens) if t is code[-1])
    return "".join(t.text for t in tokens[: last + 1]).strip()
