"""What the gateway measured for one request, and the pure mappings from it: the
``RequestOutcome`` event, the router's ``Feedback`` and the latency arithmetic.

- TTFT: request received → first content token received (seconds, gateway clock);
- TPOT: (last token − first token) / (completion tokens − 1), None with fewer than 2 tokens;
- E2E: request received → response finished (all attempts included).

The decision id is the request id. No text is ever carried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lodestar_schemas.events import RequestOutcome
from lodestar_schemas.router_api import Feedback

Status = Literal["ok", "error", "cancelled"]

_ERROR_CLASS_MAX = 128


def ttft_s(start_s: float, first_token_s: float | None) -> float | None:
    return None if first_token_s is None else max(0.0, first_token_s - start_s)


def tpot_s(first_token_s: float | None, last_token_s: float | None, completion_tokens: int) -> float | None:
    if first_token_s is None or last_token_s is None or completion_tokens < 2:
        return None
    return max(0.0, last_token_s - first_token_s) / (completion_tokens - 1)


@dataclass(slots=True)
class Measured:
    """One request as the gateway saw it; times are ``time.perf_counter()`` seconds."""

    request_id: str
    model: str
    stream: bool
    prompt_tokens: int
    start_s: float
    end_s: float | None = None
    first_token_s: float | None = None
    last_token_s: float | None = None
    completion_tokens: int = 0
    status: Status = "ok"
    http_status: int = 200
    error_class: str | None = None
    instance_id: str | None = None
    policy: str | None = None
    fallback: bool = False
    attempts: int = 0

    @property
    def ttft_s(self) -> float | None:
        return ttft_s(self.start_s, self.first_token_s)

    @property
    def tpot_s(self) -> float | None:
        return tpot_s(self.first_token_s, self.last_token_s, self.completion_tokens)

    @property
    def e2e_s(self) -> float:
        end = self.end_s if self.end_s is not None else self.start_s
        return max(0.0, end - self.start_s)

    def fail(self, status: Status, http_status: int, error_class: str) -> None:
        self.status = status
        self.http_status = http_status
        self.error_class = error_class[:_ERROR_CLASS_MAX]


def outcome_event(m: Measured) -> RequestOutcome:
    return RequestOutcome(
        request_id=m.request_id,
        decision_id=m.request_id,
        model=m.model,
        instance_id=m.instance_id,
        policy=m.policy,
        stream=m.stream,
        prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens,
        ttft_s=m.ttft_s,
        tpot_s=m.tpot_s,
        e2e_s=m.e2e_s,
        status=m.status,
        http_status=m.http_status,
        error_class=m.error_class,
        fallback=m.fallback,
        attempts=max(1, m.attempts),
    )


def first_token_feedback(m: Measured, instance_id: str) -> Feedback:
    return Feedback(
        decision_id=m.request_id,
        instance_id=instance_id,
        kind="first_token",
        prompt_tokens=m.prompt_tokens,
        ttft_s=m.ttft_s,
    )


def final_feedback(m: Measured, instance_id: str) -> Feedback:
    """``finished`` for an ok request, else ``failed`` with the error class (or the status)."""
    ok = m.status == "ok"
    return Feedback(
        decision_id=m.request_id,
        instance_id=instance_id,
        kind="finished" if ok else "failed",
        prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens,
        ttft_s=m.ttft_s,
        tpot_s=m.tpot_s,
        e2e_s=m.e2e_s,
        error=None if ok else (m.error_class or m.status)[:_ERROR_CLASS_MAX],
    )


def attempt_failed_feedback(m: Measured, instance_id: str, error_class: str, now_s: float) -> Feedback:
    """A connection that failed before anything was received (the request moves on)."""
    return Feedback(
        decision_id=m.request_id,
        instance_id=instance_id,
        kind="failed",
        prompt_tokens=m.prompt_tokens,
        e2e_s=max(0.0, now_s - m.start_s),
        error=error_class[:_ERROR_CLASS_MAX],
    )
