"""Logged decisions joined with their outcomes, from the history service (or its chDB
directory) or straight from the Kafka topics, and the request stream they describe."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lodestar.bus.consume import EventConsumer
from lodestar.bus.settings import KafkaSettings
from lodestar.report.source import HistorySource
from lodestar.workload.request import DEFAULT_MODEL, Prompt, RequestSpec
from lodestar_schemas.events import RequestOutcome, RouteDecision
from lodestar_schemas.topics import TopicName

SEGMENT_TOKENS = 512  # decision events carry one prefix hash per 512 prompt tokens


@dataclass(frozen=True)
class Candidate:
    instance_id: str
    score: float
    features: Mapping[str, float]


@dataclass(frozen=True)
class LoggedDecision:
    """One routing decision and what happened to the request (outcome fields None if unknown)."""

    decision_id: str
    ts: datetime
    model: str
    policy: str
    instance_id: str
    propensity: float
    explore: bool
    fallback: bool
    prompt_tokens: int
    prefix_segments: tuple[int, ...]
    candidates: tuple[Candidate, ...]
    model_version: int | None = None
    status: str | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None
    completion_tokens: int | None = None
    served_by: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.ttft_s is not None and self.served_by in (None, self.instance_id)

    def chosen_index(self) -> int | None:
        return next((i for i, c in enumerate(self.candidates) if c.instance_id == self.instance_id), None)


@dataclass
class LoggedWindow:
    decisions: list[LoggedDecision] = field(default_factory=list)

    def requests(self) -> list[RequestSpec]:
        """The recorded requests as a workload: arrival times relative to the first decision,
        prompt size and prefix structure (512-token segments), the output length served.
        Requests without a known output length are left out."""
        usable = [d for d in self.decisions if d.completion_tokens]
        if not usable:
            return []
        t0 = min(d.ts for d in usable)
        out = []
        for d in sorted(usable, key=lambda d: d.ts):
            prompt = Prompt(n_tokens=d.prompt_tokens, segments=d.prefix_segments, segment_tokens=SEGMENT_TOKENS)
            out.append(
                RequestSpec(
                    request_id=d.decision_id,
                    arrival_s=(d.ts - t0).total_seconds(),
                    prompt=prompt,
                    output_tokens=max(1, int(d.completion_tokens or 1)),
                    model=d.model or DEFAULT_MODEL,
                )
            )
        return out


def from_history(source: HistorySource, start: str, end: str, policy: str = "", page: int = 5000) -> LoggedWindow:
    """Every decision in ``[start, end)`` with its outcome, through the named query
    ``decisions_outcomes`` (paged)."""
    window = LoggedWindow()
    offset = 0
    while True:
        rows = source.run(
            "decisions_outcomes",
            {"from_ts": start, "to_ts": end, "policy": policy, "limit": page, "offset": offset},
        ).rows
        window.decisions.extend(_from_row(r) for r in rows)
        if len(rows) < page:
            return window
        offset += page


def _from_row(r: Mapping[str, Any]) -> LoggedDecision:
    ts = r["ts"] if isinstance(r["ts"], datetime) else datetime.fromisoformat(str(r["ts"]).replace("Z", "+00:00"))
    ids, scores, feats = r["candidate_ids"], r["candidate_scores"], r["candidate_features"]
    return LoggedDecision(
        decision_id=str(r["decision_id"]),
        ts=ts,
        model=str(r["model"]),
        policy=str(r["policy"]),
        instance_id=str(r["instance_id"]),
        propensity=float(r["propensity"]),
        explore=bool(r["explore"]),
        fallback=bool(r["fallback"]),
        prompt_tokens=int(r["prompt_tokens"]),
        prefix_segments=tuple(int(x) for x in r.get("prefix_segments") or ()),
        candidates=tuple(
            Candidate(str(i), float(s), {str(k): float(v) for k, v in dict(f).items()})
            for i, s, f in zip(ids, scores, feats, strict=True)
        ),
        model_version=None if r.get("model_version") is None else int(r["model_version"]),
        status=r.get("status"),
        ttft_s=r.get("ttft_s"),
        tpot_s=r.get("tpot_s"),
        e2e_s=r.get("e2e_s"),
        completion_tokens=r.get("completion_tokens"),
        served_by=r.get("outcome_instance_id"),
    )


def from_kafka(settings: KafkaSettings, start: datetime, end: datetime, idle_s: float = 2.0) -> LoggedWindow:
    """Read the decision and outcome topics from their beginning (the local broker's end offsets
    are unreliable, so reading stops after ``idle_s`` without new events) and join them."""
    return asyncio.run(_from_kafka(settings, start, end, idle_s))


async def _from_kafka(settings: KafkaSettings, start: datetime, end: datetime, idle_s: float) -> LoggedWindow:
    reader = EventConsumer(settings, [TopicName.ROUTE_DECISIONS, TopicName.REQUEST_OUTCOMES], group_id=None)
    await reader.start()
    decisions: dict[tuple[str, str], RouteDecision] = {}
    outcomes: dict[tuple[str, str], RequestOutcome] = {}
    try:
        async for batch in reader.until_idle(idle_s):
            for rec in batch:
                e = rec.event
                if isinstance(e, RouteDecision) and start <= e.ts < end:
                    decisions[(e.decision_id, e.instance_id)] = e
                elif isinstance(e, RequestOutcome):
                    outcomes[(e.decision_id, e.instance_id or "")] = e
    finally:
        await reader.stop()
    window = LoggedWindow()
    for key, d in sorted(decisions.items(), key=lambda kv: kv[1].ts):
        o = outcomes.get(key)
        window.decisions.append(
            LoggedDecision(
                decision_id=d.decision_id,
                ts=d.ts,
                model=d.model,
                policy=d.policy,
                instance_id=d.instance_id,
                propensity=d.propensity,
                explore=d.explore,
                fallback=d.fallback,
                prompt_tokens=d.prompt_tokens,
                prefix_segments=d.prefix_segments,
                candidates=tuple(Candidate(c.instance_id, c.score, dict(c.features)) for c in d.candidates),
                model_version=d.model_version,
                status=None if o is None else o.status,
                ttft_s=None if o is None else o.ttft_s,
                tpot_s=None if o is None else o.tpot_s,
                e2e_s=None if o is None else o.e2e_s,
                completion_tokens=None if o is None else o.completion_tokens,
                served_by=None if o is None else o.instance_id,
            )
        )
    return window


def summarize_window(decisions: Sequence[LoggedDecision]) -> dict[str, Any]:
    ok = [d for d in decisions if d.ok]
    policies: dict[str, int] = {}
    for d in decisions:
        policies[d.policy] = policies.get(d.policy, 0) + 1
    return {"decisions": len(decisions), "with_outcome": len(ok), "policies": policies}
