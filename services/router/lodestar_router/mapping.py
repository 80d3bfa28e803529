"""Pure conversions between the HTTP contract, the policy contract and the decision event.

- :func:`request_view`: ``RouteRequest`` → ``RequestView`` (the request id is the decision id).
- :func:`decision_event`: ``Decision`` → ``RouteDecision``, carrying every candidate the policy
  scored with its score and features, so the trainer can learn from the decision later.
- :func:`outcome_of`: a final ``Feedback`` → ``Outcome`` for the policy's hook.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from lodestar.policy.contracts import Decision, InstanceView, Outcome, RequestView
from lodestar_schemas.events import CandidateRecord, RouteDecision
from lodestar_schemas.router_api import Feedback, RouteRequest, RouteResponse

SEGMENT_BLOCKS = 32  # 16-token blocks per 512-token prefix segment in decision events


def request_view(request: RouteRequest) -> RequestView:
    return RequestView(
        request_id=request.request_id,
        model=request.model,
        prompt_tokens=request.prompt_tokens,
        block_hashes=tuple(request.block_hashes),
        expected_output_tokens=request.expected_output_tokens,
        tenant=request.tenant,
        session_id=request.session_id,
    )


def decision_event(
    view: RequestView, decision: Decision, candidates: Sequence[InstanceView], ts: datetime
) -> RouteDecision:
    """The event of one decision. Candidates are those the policy scored or described (the
    pool after its filters), in the order offered; the chosen one is always among them.
    Raises pydantic's ValidationError for values the event refuses (non-finite features)."""
    scores, features = decision.scores, decision.features
    records = [
        CandidateRecord(
            instance_id=c.instance_id,
            score=scores.get(c.instance_id, 0.0),
            features=dict(features.get(c.instance_id, {})),
        )
        for c in candidates
        if c.instance_id in scores or c.instance_id in features or c.instance_id == decision.instance_id
    ]
    return RouteDecision(
        ts=ts,
        decision_id=view.request_id,
        model=view.model,
        instance_id=decision.instance_id,
        policy=decision.policy,
        model_version=decision.model_version,
        feature_schema_version=decision.feature_schema_version,
        prompt_tokens=view.prompt_tokens,
        cached_prefix_tokens=min(max(decision.cached_prefix_tokens, 0), view.prompt_tokens),
        prefix_segments=tuple(view.block_hashes[SEGMENT_BLOCKS - 1 :: SEGMENT_BLOCKS]),
        candidates=tuple(records),
        explore=decision.explore,
        fallback=decision.fallback,
        propensity=decision.propensity,
    )


def route_response(view: RequestView, decision: Decision, url: str) -> RouteResponse:
    return RouteResponse(
        decision_id=view.request_id,
        instance_id=decision.instance_id,
        url=url,
        policy=decision.policy,
        model_version=decision.model_version,
        fallback=decision.fallback,
        explore=decision.explore,
    )


def outcome_of(feedback: Feedback, prompt_tokens: int, elapsed_s: float) -> Outcome:
    """The policy's view of a ``finished`` or ``failed`` feedback. Missing token counts and
    end-to-end time fall back to what the router knows (prompt size at dispatch, time since)."""
    error = None if feedback.kind == "finished" else (feedback.error or "failed")
    return Outcome(
        decision_id=feedback.decision_id,
        instance_id=feedback.instance_id,
        prompt_tokens=feedback.prompt_tokens or prompt_tokens,
        completion_tokens=feedback.completion_tokens,
        ttft_s=feedback.ttft_s,
        tpot_s=feedback.tpot_s,
        e2e_s=feedback.e2e_s if feedback.e2e_s is not None else max(0.0, elapsed_s),
        error=error,
    )
