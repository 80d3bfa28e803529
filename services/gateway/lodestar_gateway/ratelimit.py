"""Per-client limits: requests per second with a burst (a token bucket) and concurrent streams.

Pure and single-threaded (the gateway's event loop): time is passed in (``now_s``, monotonic
seconds), nothing sleeps. A client is a configured key's name, or :data:`ANONYMOUS` for every
request when no keys are configured (the limits then hold for the gateway as a whole).

Call order for one request: :meth:`ClientLimits.admit` once (0.0: go on; else 429 with
``Retry-After``); for a stream, :meth:`StreamSlots.acquire` before relaying and exactly one
:meth:`StreamSlots.release` afterwards, on every exit path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

ANONYMOUS = "anonymous"


@dataclass(frozen=True, slots=True)
class Limits:
    """``rate_rps`` requests per second with bursts of ``burst`` (rate None: unlimited);
    at most ``max_streams`` streams open at once (None: unlimited)."""

    rate_rps: float | None = None
    burst: int = 1
    max_streams: int | None = None

    def __post_init__(self) -> None:
        if self.rate_rps is not None and not (math.isfinite(self.rate_rps) and self.rate_rps > 0):
            raise ValueError(f"rate_rps must be a positive number, not {self.rate_rps}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst}")
        if self.max_streams is not None and self.max_streams < 1:
            raise ValueError(f"max_streams must be at least 1, not {self.max_streams}")


class TokenBucket:
    """Holds up to ``burst`` tokens, refilled at ``rate_rps`` per second; starts full."""

    __slots__ = ("_stamp_s", "_tokens", "burst", "rate_rps")

    def __init__(self, rate_rps: float, burst: int, now_s: float) -> None:
        self.rate_rps = rate_rps
        self.burst = burst
        self._tokens = float(burst)
        self._stamp_s = now_s

    def take(self, now_s: float) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there will be (nothing
        taken). A clock that goes backwards adds nothing."""
        if now_s > self._stamp_s:
            self._tokens = min(float(self.burst), self._tokens + (now_s - self._stamp_s) * self.rate_rps)
            self._stamp_s = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate_rps

    @property
    def tokens(self) -> float:
        return self._tokens


class StreamSlots:
    """A counter of open streams with a ceiling (None: unlimited, still counted)."""

    __slots__ = ("active", "limit")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.active = 0

    def acquire(self) -> bool:
        if self.limit is not None and self.active >= self.limit:
            return False
        self.active += 1
        return True

    def release(self) -> None:
        if self.active <= 0:
            raise RuntimeError("StreamSlots.release without a matching acquire")
        self.active -= 1


class ClientLimits:
    """The bucket and stream slots of one client."""

    __slots__ = ("bucket", "name", "streams")

    def __init__(self, name: str, limits: Limits, now_s: float) -> None:
        self.name = name
        self.bucket = TokenBucket(limits.rate_rps, limits.burst, now_s) if limits.rate_rps is not None else None
        self.streams = StreamSlots(limits.max_streams)

    def admit(self, now_s: float) -> float:
        """0.0 if a request may go on now, else the seconds to wait."""
        return 0.0 if self.bucket is None else self.bucket.take(now_s)


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` in whole seconds (HTTP allows no fractions), at least 1."""
    return str(max(1, math.ceil(wait_s)))


class ClientTable:
    """Every client's limits, built once: ``default`` for each name, ``overrides`` by name."""

    def __init__(self, names: Iterable[str], default: Limits, overrides: Mapping[str, Limits], now_s: float) -> None:
        names = list(names) or [ANONYMOUS]
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise ValueError(f"limits for unknown keys: {', '.join(unknown)} (known: {', '.join(names)})")
        self.clients = {name: ClientLimits(name, overrides.get(name, default), now_s) for name in names}

    def __getitem__(self, name: str) -> ClientLimits:
        return self.clients[name]

    @property
    def open_streams(self) -> int:
        return sum(c.streams.active for c in self.clients.values())
