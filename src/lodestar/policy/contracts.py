"""The routing-policy contract, shared by the simulator, the live router and replay.

Call order, per request: the host builds an immutable :class:`RequestView` and one
:class:`InstanceView` per candidate, calls :meth:`Policy.decide`, dispatches to the chosen
instance, calls :meth:`Policy.on_first_token` when the first output token arrives (if it
does), and later calls :meth:`Policy.on_outcome` with what happened (from the same thread or
event loop: policies are not thread-safe). Hosts use the request id as the decision id.
Policies may keep learned or tracked state; they must never mutate the views they are given.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


class NoCandidateError(RuntimeError):
    """No candidate instance can take the request (empty set, all unhealthy, none fits)."""

    def __init__(self, request_id: str, reason: str) -> None:
        self.request_id = request_id
        self.reason = reason
        super().__init__(f"no instance can serve request {request_id!r}: {reason}")


@dataclass(frozen=True, slots=True)
class RequestView:
    """What a policy may know about a request before it is served."""

    request_id: str
    model: str
    prompt_tokens: int
    block_hashes: tuple[int, ...] = ()
    expected_output_tokens: int | None = None
    tenant: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class InstanceView:
    """One candidate as the router sees it: the last scraped state (with its age) plus the
    router's own accounting of what it sent there and has not seen finish."""

    instance_id: str
    model: str
    healthy: bool = True
    # last scraped engine state (age = inf if never scraped)
    num_running: int = 0
    num_waiting: int = 0
    kv_usage_frac: float = 0.0
    prefix_hit_rate: float | None = None
    state_age_s: float = math.inf
    max_model_len: int | None = None
    kv_capacity_blocks: int | None = None  # the engine's KV cache size (vLLM num_gpu_blocks)
    # router-side accounting: requests sent and not finished, and their prompt tokens still
    # waiting for a first token
    inflight_requests: int = 0
    inflight_prefill_requests: int = 0
    inflight_prefill_tokens: int = 0


@dataclass(frozen=True)
class Decision:
    """A policy's choice. ``scores`` maps every scored candidate to a value in [0, 1];
    ``propensity`` is the probability the policy had of choosing ``instance_id``."""

    instance_id: str
    scores: Mapping[str, float]
    policy: str
    propensity: float = 1.0
    explore: bool = False
    fallback: bool = False
    model_version: int | None = None
    feature_schema_version: int | None = None
    features: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    cached_prefix_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to a dispatched request, as measured by the host (seconds)."""

    decision_id: str
    instance_id: str
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float
    error: str | None = None


class Policy(ABC):
    """A routing policy. Subclasses implement :meth:`decide`; the hooks default to no-ops."""

    name: str = "policy"

    @abstractmethod
    def decide(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> Decision:
        """Choose one of ``candidates`` for ``request`` at host time ``now_s`` (seconds).

        Raises NoCandidateError when no candidate is usable.
        """

    def on_first_token(self, request_id: str, instance_id: str, now_s: float) -> None:  # noqa: B027 - optional hook
        """The first output token of an earlier decision arrived: its prefill is over."""

    def on_outcome(self, outcome: Outcome, now_s: float) -> None:  # noqa: B027 - optional hook
        """Feedback for an earlier decision (finished, or failed with ``outcome.error``)."""
