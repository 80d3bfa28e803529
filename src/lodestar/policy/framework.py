"""Plugin contracts of the profile engine: filters, scorers and pickers (as in llm-d's
``scheduler_profile.go``). The engine (:mod:`lodestar.policy.profile_policy`) knows only these.

Per decision, in order: every filter narrows the candidate list; every scorer returns one
score per remaining candidate (the engine clamps it to [0, 1]); the engine forms the weighted
total ``Σ wᵢ·sᵢ / Σ wᵢ`` (in [0, 1]); the picker turns candidates and totals into one choice
and the probability it had of making it. After the choice the engine calls ``on_picked`` on
every scorer and on the picker; the host's later feedback reaches them through
``on_first_token`` and ``on_outcome``. Candidates are given in a deterministic order and are
never mutated. Plugins are not thread-safe (one decision at a time).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from lodestar.policy.contracts import InstanceView, Outcome, RequestView

_NO_FEATURES: Mapping[str, Sequence[float]] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Scored:
    """A scorer's answer, aligned with the candidates it was given.

    ``scores`` are meant to lie in [0, 1] (higher is better; the engine clamps them);
    ``cached_tokens`` is the scorer's estimate of each candidate's cached prompt prefix, if it
    has one; ``features`` are named per-candidate values worth recording with the decision.
    """

    scores: Sequence[float]
    cached_tokens: Sequence[int] | None = None
    features: Mapping[str, Sequence[float]] = field(default_factory=lambda: _NO_FEATURES)


@dataclass(frozen=True, slots=True)
class Pick:
    """A picker's choice: ``index`` into the candidates, and ``propensity`` in (0, 1], the
    probability the picker had of choosing it (1 for deterministic pickers).

    Pickers that decide on their own (cache-aware ones) may also report ``scores`` in [0, 1]
    (recorded instead of the weighted totals), ``cached_tokens`` and ``features``.
    """

    index: int
    propensity: float = 1.0
    scores: Sequence[float] | None = None
    cached_tokens: Sequence[int] | None = None
    features: Mapping[str, Sequence[float]] = field(default_factory=lambda: _NO_FEATURES)


class Hooks:
    """Optional feedback hooks with no-op defaults (stateful plugins override them)."""

    def on_picked(self, request: RequestView, instance_id: str, now_s: float) -> None:
        """``request`` was sent to ``instance_id`` at ``now_s`` (seconds)."""

    def on_first_token(self, request_id: str, instance_id: str, now_s: float) -> None:
        """The first output token of ``request_id`` arrived: its prefill is over."""

    def on_outcome(self, outcome: Outcome, now_s: float) -> None:
        """An earlier request finished or failed; ``outcome.decision_id`` is its request id."""


class Filter(ABC):
    """Narrows the candidates; returns a new list (a subset, order kept), never mutates."""

    @abstractmethod
    def filter(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> list[InstanceView]:
        """The candidates that may serve ``request``."""

    def none_left(self, request: RequestView, candidates: Sequence[InstanceView]) -> str:
        """Why none of ``candidates`` passed, in words a client can act on (the router's 503
        says it); a filter that knows its reason says it better than its class name."""
        return f"none of {len(candidates)} candidate(s) passed {type(self).__name__}"


class Scorer(Hooks, ABC):
    """Scores every candidate in [0, 1], higher is better."""

    @abstractmethod
    def score(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Scored:
        """One score per candidate, in the candidates' order."""


class Picker(Hooks, ABC):
    """Turns the scored candidates into one choice with its propensity."""

    @abstractmethod
    def pick(
        self, request: RequestView, candidates: Sequence[InstanceView], totals: Sequence[float], now_s: float
    ) -> Pick:
        """Choose one of ``candidates`` (non-empty); ``totals[i]`` in [0, 1] is candidate i's
        weighted score (1.0 for all when the profile has no scorers)."""
