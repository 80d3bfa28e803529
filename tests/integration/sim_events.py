"""Test helper: the decision and outcome events of a short simulated run of a policy, stamped
with simulated time (so a recorded window has the run's real spacing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lodestar.cluster.spec import load_cluster
from lodestar.plugins import full_registry, resolve_profile
from lodestar.policy.contracts import Decision, InstanceView, Outcome, RequestView
from lodestar.policy.profile_spec import build_policy
from lodestar.sim.simulator import Simulator
from lodestar.workload.arrivals import PoissonArrivals
from lodestar.workload.generator import RequestGenerator
from lodestar.workload.lengths import UniformLengths
from lodestar_router.mapping import decision_event
from lodestar_schemas.events import Event, RequestOutcome

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Recorder:
    def __init__(self, policy: str) -> None:
        self.policy = policy
        self.events: list[Event] = []

    def on_decision(self, request: RequestView, decision: Decision, now_s: float) -> None:
        pool = [InstanceView(iid, request.model) for iid in decision.features]
        self.events.append(decision_event(request, decision, pool, T0 + timedelta(seconds=now_s)))

    def on_outcome(self, outcome: Outcome, now_s: float) -> None:
        self.events.append(
            RequestOutcome(
                ts=T0 + timedelta(seconds=now_s),
                request_id=outcome.decision_id,
                decision_id=outcome.decision_id,
                model="llama-3-8b",
                instance_id=outcome.instance_id,
                policy=self.policy,
                stream=True,
                prompt_tokens=outcome.prompt_tokens,
                completion_tokens=outcome.completion_tokens,
                ttft_s=outcome.ttft_s,
                tpot_s=outcome.tpot_s,
                e2e_s=outcome.e2e_s,
                status="ok" if outcome.error is None else "error",
                http_status=200,
            )
        )


def simulated_events(n: int = 600, profile: str = "lodestar", rate_rps: float = 4.0) -> list[Event]:
    """Decisions (with features) and outcomes of ``n`` requests on ``mini-hetero2``."""
    cluster = load_cluster("mini-hetero2")
    gen = RequestGenerator(UniformLengths("u", 200, 3000, 20, 200), seed=n)
    requests = gen.generate(PoissonArrivals(rate_rps=rate_rps, seed=n).times(2 * n / rate_rps))[:n]
    policy = build_policy(resolve_profile(profile), full_registry(), seed=0)
    sim = Simulator(cluster, policy)
    recorder = Recorder(policy.name)
    sim.observers.append(recorder)
    sim.run(requests)
    return recorder.events
