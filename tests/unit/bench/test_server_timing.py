"""Reading a ``Server-Timing`` header: the durations by name, anything malformed left out."""

from __future__ import annotations

import pytest

from lodestar.bench.server_timing import server_timing_ms


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("route;dur=0.412, gateway;dur=1.305", {"route": 0.412, "gateway": 1.305}),  # Lodestar's gateway
        ('db;desc="Database";dur=53, app;dur=47.2', {"db": 53.0, "app": 47.2}),  # desc first, spaces
        ('cache;desc=hit, total;dur="12"', {"total": 12.0}),  # no dur: left out; quoted dur read
        ("a;dur=abc, b;dur=-1, c;dur=nan, d;dur=inf, e;DUR=2", {"e": 2.0}),  # bad values left out
        (";dur=3, , f", {}),  # no name, empty entry, no dur
        ("", {}),
        (None, {}),
    ],
)
def test_durations_by_name(header: str | None, expected: dict[str, float]) -> None:
    assert server_timing_ms(header) == expected
