"""Outlier ejection (passive health checking), as Envoy's outlier detection does it.

An instance that fails a request in a way that blames the instance, not the request, is
*ejected*: the instance directory offers it to policies as unhealthy, so no policy picks it. The
ejection lasts a backoff that doubles with each repeated ejection (``base_s``, 2×, 4×, …, capped
at ``max_s``); the instance is *readmitted* at the first check after the backoff ended at which
its scraped state is healthy and was taken after the ejection began (fresh evidence). An
instance nothing scrapes (a static instance never scraped) is readmitted when the backoff ends.
A failure more than ``reset_after_s`` after the last readmission starts the backoff over at
``base_s``; an earlier one is a repeat and doubles it.

Never more than ``max_ejected_fraction`` of a model's instances (at least one) are ejected at
once, as Envoy's ``max_ejection_percent``: when the whole fleet misses deadlines because it is
overloaded, ejecting every instance would turn an overload into an outage. A failure that would
eject an instance beyond the cap is counted (``capped``) and ejects nothing; the instance's next
failure may eject it once another instance is readmitted. Scraped health is not capped: an
instance whose scrape says unhealthy is never offered.

Which failures count (:class:`FailureKind`, from the gateway's error classes by
:func:`classify`): connection failures, broken responses and deadlines eject at once; 5xx
answers eject after ``consecutive_server_errors`` of them without a success in between (one
500 may be the request's fault; a run of them is the instance's). Anything else — success,
4xx, client cancellations — is no evidence against the instance. Failures reported while an
instance is ejected (requests that were already in flight) change nothing.

A deadline missed by a request that received nothing at all (``silent_since_s``: when it was
sent) is no evidence either if the instance made *progress* after that moment — sent another
request its first token, or finished one (:meth:`Ejections.progress`, :meth:`Ejections.success`).
Such an instance is queueing more than the deadline allows, not failing: a hung engine serves
nobody, an overloaded one serves others while this request waits. Ejecting it would take
capacity away exactly when it is short. These timeouts are counted (``spared``). A
non-streamed request's whole-response deadline missed after tokens came is no evidence at all
(:func:`classify` with ``tokens_came``): tokens flowed, so the answer was long, not the
instance silent.

The gateway (its own failures) and the router (the gateway's ``failed`` feedback) each keep one
:class:`Ejections`, inside their :class:`~lodestar.policy.directory.InstanceDirectory`.
Times are host monotonic seconds. Pure and event-loop only (not thread-safe).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum


class FailureKind(StrEnum):
    CONNECT = "connect"  # refused, connect timeout, closed before answering
    BROKEN = "broken"  # the connection broke mid-response, or a stream ended without [DONE]
    TIMEOUT = "timeout"  # first-token, idle or response deadline
    SERVER_ERROR = "server_error"  # a 5xx answer (or an error event inside a stream)


#: The gateway's error classes (``RequestOutcome.error_class``, feedback ``error``) that blame the instance.
_KINDS: dict[str, FailureKind] = {
    "upstream_connect": FailureKind.CONNECT,
    "upstream_disconnected": FailureKind.BROKEN,
    "upstream_incomplete": FailureKind.BROKEN,
    "first_token_timeout": FailureKind.TIMEOUT,
    "idle_timeout": FailureKind.TIMEOUT,
    "response_timeout": FailureKind.TIMEOUT,
    "upstream_stream_error": FailureKind.SERVER_ERROR,
}
_UPSTREAM_5XX = re.compile(r"upstream_5\d\d")


#: Deadlines that only bound an answer's length: missed after tokens came, they blame nobody
#: (tokens flowed, or the idle deadline had fired first).
_LENGTH_DEADLINES = frozenset({"response_timeout"})


def classify(error_class: str | None, tokens_came: bool = False) -> FailureKind | None:
    """The failure kind of a gateway error class; None for success and for errors that are
    no evidence against the instance (4xx, cancellations, the gateway's own faults, and a
    whole-response deadline missed while ``tokens_came``)."""
    if error_class is None or (tokens_came and error_class in _LENGTH_DEADLINES):
        return None
    kind = _KINDS.get(error_class)
    if kind is None and _UPSTREAM_5XX.fullmatch(error_class):
        return FailureKind.SERVER_ERROR
    return kind


@dataclass(frozen=True)
class EjectionPolicy:
    """Backoff ``min(base_s × multiplier^(n−1), max_s)`` for the n-th ejection in a row.
    At most ``max_ejected_fraction`` of a pool (at least one instance) ejected at once.
    ValueError unless ``0 < base_s <= max_s``, ``multiplier >= 1``, ``reset_after_s >= 0``,
    ``consecutive_server_errors >= 1`` and ``0 < max_ejected_fraction <= 1``."""

    base_s: float = 1.0
    max_s: float = 30.0
    multiplier: float = 2.0
    reset_after_s: float = 60.0
    consecutive_server_errors: int = 5
    max_ejected_fraction: float = 0.5

    def __post_init__(self) -> None:
        if not (0 < self.base_s <= self.max_s and math.isfinite(self.max_s)):
            raise ValueError(f"need 0 < base_s ({self.base_s}) <= max_s ({self.max_s}) < inf")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier}")
        if self.reset_after_s < 0:
            raise ValueError(f"reset_after_s must be >= 0, got {self.reset_after_s}")
        if self.consecutive_server_errors < 1:
            raise ValueError(f"consecutive_server_errors must be >= 1, got {self.consecutive_server_errors}")
        if not 0 < self.max_ejected_fraction <= 1:
            raise ValueError(f"max_ejected_fraction must be in (0, 1], got {self.max_ejected_fraction}")

    def max_ejected(self, pool_size: int) -> int:
        """How many of a pool of ``pool_size`` instances may be ejected at once (at least one)."""
        return max(1, math.floor(self.max_ejected_fraction * pool_size + 1e-9))

    def backoff_s(self, level: int) -> float:
        """The ejection time of the ``level``-th ejection in a row (``level >= 1``)."""
        return min(self.base_s * self.multiplier ** (level - 1), self.max_s)


@dataclass(slots=True)
class _Record:
    level: int = 0  # ejections in a row
    ejected_at_s: float | None = None  # None: admitted
    until_s: float = 0.0
    readmitted_at_s: float | None = None
    server_errors: int = 0  # consecutive 5xx since the last success or ejection
    reason: str = ""
    progress_s: float = -math.inf  # the latest first token or success of any request on it


@dataclass(frozen=True, slots=True)
class EjectionStatus:
    """One instance's ejection state for metrics and admin views. ``remaining_s`` is 0 when
    the backoff is over but the instance waits for a healthy scrape."""

    instance_id: str
    ejected: bool
    level: int
    remaining_s: float
    reason: str


@dataclass
class EjectionCounters:
    ejections: int = 0
    readmissions: int = 0
    ignored_while_ejected: int = 0
    capped: int = 0  # failures that would have ejected an instance beyond max_ejected_fraction
    spared: int = 0  # deadlines missed while the instance served other requests (queueing)


class Ejections:
    """Ejection state of every instance that ever failed or made progress. See the module docstring."""

    def __init__(self, policy: EjectionPolicy | None = None) -> None:
        self.policy = policy or EjectionPolicy()
        self.counters = EjectionCounters()
        self._records: dict[str, _Record] = {}
        self._n_ejected = 0

    def failure(
        self,
        instance_id: str,
        kind: FailureKind,
        now_s: float,
        may_eject: bool = True,
        silent_since_s: float | None = None,
    ) -> float | None:
        """Count one failure of ``kind``; the backoff in seconds if it ejects the instance now,
        else None (below the 5xx threshold, already ejected, ``may_eject`` False: its pool
        has as many ejected as it may, or a deadline missed while the instance made progress).

        ``silent_since_s``: for a request that received nothing from the instance, when it was
        sent (None if it received something, or if unknown)."""
        rec = self._record(instance_id)
        if rec.ejected_at_s is not None:
            self.counters.ignored_while_ejected += 1
            return None
        if kind is FailureKind.TIMEOUT and silent_since_s is not None and rec.progress_s > silent_since_s:
            self.counters.spared += 1
            return None
        if kind is FailureKind.SERVER_ERROR:
            rec.server_errors += 1
            if rec.server_errors < self.policy.consecutive_server_errors:
                return None
        if not may_eject:
            self.counters.capped += 1
            return None
        if rec.readmitted_at_s is None or now_s - rec.readmitted_at_s > self.policy.reset_after_s:
            rec.level = 0
        rec.level += 1
        backoff = self.policy.backoff_s(rec.level)
        rec.ejected_at_s, rec.until_s = now_s, now_s + backoff
        rec.server_errors = 0
        rec.reason = kind.value
        self.counters.ejections += 1
        self._n_ejected += 1
        return backoff

    def success(self, instance_id: str, now_s: float) -> None:
        """A request served at ``now_s``: the run of 5xx answers (if any) is broken, and the
        instance made progress."""
        self._record(instance_id).server_errors = 0
        self.progress(instance_id, now_s)

    def progress(self, instance_id: str, now_s: float) -> None:
        """The instance sent some request its first token (or finished one) at ``now_s``."""
        rec = self._record(instance_id)
        rec.progress_s = max(rec.progress_s, now_s)

    def _record(self, instance_id: str) -> _Record:
        rec = self._records.get(instance_id)
        if rec is None:
            rec = self._records[instance_id] = _Record()
        return rec

    def ejected(self, instance_id: str, now_s: float, scraped_at_s: float | None, scraped_healthy: bool) -> bool:
        """Whether ``instance_id`` is ejected at ``now_s``, readmitting it if it may be.

        ``scraped_at_s``: host time its latest scraped state was taken (None if it was never
        scraped); ``scraped_healthy``: what that state says."""
        rec = self._records.get(instance_id)
        if rec is None or rec.ejected_at_s is None:
            return False
        if now_s < rec.until_s:
            return True
        if scraped_at_s is not None and not (scraped_healthy and scraped_at_s >= rec.ejected_at_s):
            return True  # the backoff is over, but no healthy scrape since the ejection yet
        rec.ejected_at_s = None
        rec.readmitted_at_s = now_s
        self.counters.readmissions += 1
        self._n_ejected -= 1
        return False

    def forget(self, instance_id: str) -> None:
        rec = self._records.pop(instance_id, None)
        if rec is not None and rec.ejected_at_s is not None:
            self._n_ejected -= 1

    def status(self, instance_id: str, now_s: float) -> EjectionStatus:
        """Without readmitting (call :meth:`ejected` for that)."""
        rec = self._records.get(instance_id)
        if rec is None or rec.ejected_at_s is None:
            return EjectionStatus(instance_id, False, rec.level if rec else 0, 0.0, "")
        return EjectionStatus(instance_id, True, rec.level, max(0.0, rec.until_s - now_s), rec.reason)

    def ejected_count(self) -> int:
        """Instances ejected now, or whose backoff ended but who were not readmitted yet."""
        return self._n_ejected
