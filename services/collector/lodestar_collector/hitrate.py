"""Prefix-cache hit rate between two scrapes, from the engine's cumulative counters. Pure.

``rate = Δhits / Δqueries`` over the interval since the previous *successful* scrape, in [0, 1].
None when there is no previous reading, no counters, or no query in the interval (an idle
instance has no hit rate, not a hit rate of 0). A counter that went down means the engine
restarted: as Prometheus' ``rate()`` does, the new values are then taken as the increase since
a reset to zero.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PrefixCounters:
    """Cumulative prefix-cache counters (tokens for vLLM ≥ 0.8 and SGLang; blocks in early v1)."""

    hits: int
    queries: int


def counters_of(hits: int | None, queries: int | None) -> PrefixCounters | None:
    return None if hits is None or queries is None else PrefixCounters(hits, queries)


def prefix_hit_rate(previous: PrefixCounters | None, current: PrefixCounters | None) -> float | None:
    """Hit rate over the interval ``previous`` → ``current`` (see the module docstring)."""
    if previous is None or current is None:
        return None
    reset = current.queries < previous.queries or current.hits < previous.hits
    d_hits = current.hits if reset else current.hits - previous.hits
    d_queries = current.queries if reset else current.queries - previous.queries
    if d_queries <= 0:
        return None
    return min(1.0, max(0.0, d_hits / d_queries))
