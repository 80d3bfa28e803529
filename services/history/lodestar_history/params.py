"""Turning user-given parameter values into typed values for ClickHouse ``{name:Type}`` slots.

Pure. Times accept ISO 8601 (naive means UTC), epoch seconds, and Grafana-style relative
forms: ``now``, ``now-15m``, ``now+1h`` (units s, m, h, d, w).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_RELATIVE = re.compile(r"^now\s*(?:([+-])\s*(\d+(?:\.\d+)?)\s*([smhdw]))?$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_INT = re.compile(r"^(U?)Int(8|16|32|64|128|256)$")
_FLOAT = re.compile(r"^Float(32|64)$")
_DATETIME = re.compile(r"^DateTime(64)?(\(.*\))?$")


class QueryParamError(ValueError):
    """A parameter value is missing, unknown or of the wrong type; the message names it."""


def python_kind(ch_type: str) -> str:
    """``datetime``, ``int``, ``float`` or ``str`` for a supported ClickHouse type, else ValueError."""
    if _DATETIME.match(ch_type):
        return "datetime"
    if _INT.match(ch_type):
        return "int"
    if _FLOAT.match(ch_type):
        return "float"
    if ch_type == "String":
        return "str"
    raise ValueError(f"unsupported parameter type {ch_type!r} (DateTime64, [U]IntN, FloatN, String)")


def parse_time(value: object, now: datetime) -> datetime:
    """A tz-aware UTC datetime from ISO text, epoch seconds, a datetime or ``now±N<unit>``."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, bool):
        raise ValueError("expected a time, got a boolean")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    if not isinstance(value, str):
        raise ValueError(f"expected a time, got {type(value).__name__}")
    text = value.strip()
    match = _RELATIVE.match(text)
    if match:
        sign, amount, unit = match.groups()
        if sign is None:
            return now
        delta = timedelta(seconds=float(amount) * _UNIT_S[unit])
        return now - delta if sign == "-" else now + delta
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected ISO 8601, epoch seconds or now-15m style, got {text!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_window(start: object, end: object, now: datetime) -> tuple[datetime, datetime]:
    """A ``--from`` / ``--to`` pair as times at one ``now``; ValueError naming the option at
    fault, or saying that the window is empty (it ends before it starts)."""
    bounds: list[datetime] = []
    for option, value in (("--from", start), ("--to", end)):
        try:
            bounds.append(parse_time(value, now))
        except ValueError as exc:
            raise ValueError(f"{option}: {exc}") from None
    first, last = bounds
    if first >= last:
        raise ValueError(
            f"the window is empty: --from {start} ({first:%Y-%m-%d %H:%M:%S} UTC)"
            f" is not before --to {end} ({last:%Y-%m-%d %H:%M:%S} UTC)"
        )
    return first, last


def coerce(name: str, ch_type: str, value: object, now: datetime) -> object:
    """``value`` as the Python value bound to ``{name:ch_type}``; QueryParamError naming ``name``."""
    kind = python_kind(ch_type)
    try:
        if kind == "datetime":
            return parse_time(value, now)
        if kind == "int":
            return _int(ch_type, value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError("expected a number, got a boolean")
            if not isinstance(value, int | float | str):
                raise ValueError(f"expected a number, got {type(value).__name__}")
            return float(value)
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        return str(value)
    except ValueError as exc:
        raise QueryParamError(f"parameter {name!r} ({ch_type}): {exc}") from None


def _int(ch_type: str, value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {value}")
        value = int(value)
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ValueError(f"expected an integer, got {value!r}") from None
    if not isinstance(value, int):
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    match = _INT.match(ch_type)
    assert match is not None
    unsigned, bits = match.group(1) == "U", int(match.group(2))
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    if not low <= value <= high:
        raise ValueError(f"{value} is outside [{low}, {high}]")
    return value
