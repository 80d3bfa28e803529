"""The contract every routing policy keeps, checked for every shipped profile and for a minimal
profile around every registered scorer, picker and policy plugin — discovered from the
registry, so a plugin registered later is checked without touching this file."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import pytest
from policy_helpers import MODEL, STANDARD_FILTERS, chain, request, view

from lodestar.plugins import full_registry
from lodestar.policy.contracts import InstanceView, NoCandidateError, Outcome, Policy, RequestView
from lodestar.policy.fleet import FleetState
from lodestar.policy.profile_spec import ProfileSpec, build_policy, list_profiles, load_profile

REGISTRY = full_registry()


def _cases() -> dict[str, ProfileSpec]:
    cases = {f"profile:{name}": load_profile(name) for name in list_profiles()}
    for spec in REGISTRY.specs("picker"):
        cases[f"picker:{spec.type_name}"] = ProfileSpec.model_validate(
            {"name": f"picker-{spec.type_name}", "filters": STANDARD_FILTERS, "picker": {"type": spec.type_name}}
        )
    for spec in REGISTRY.specs("scorer"):
        cases[f"scorer:{spec.type_name}"] = ProfileSpec.model_validate(
            {
                "name": f"scorer-{spec.type_name}",
                "filters": STANDARD_FILTERS,
                "scorers": [{"type": spec.type_name}],
                "picker": {"type": "max-score"},
            }
        )
    for spec in REGISTRY.specs("policy"):
        cases[f"policy:{spec.type_name}"] = ProfileSpec.model_validate(
            {"name": f"policy-{spec.type_name}", "policy": {"type": spec.type_name}}
        )
    return cases


CASES = _cases()


@pytest.fixture(params=sorted(CASES))
def make_policy(request: pytest.FixtureRequest) -> Callable[[int], Policy]:
    spec = CASES[request.param]
    return lambda seed: build_policy(spec, REGISTRY, seed=seed)


def _allowed(req: RequestView, candidates: list[InstanceView]) -> set[str]:
    need = req.prompt_tokens + (req.expected_output_tokens or 0)
    return {
        c.instance_id
        for c in candidates
        if c.healthy and c.model == req.model and (c.max_model_len is None or need <= c.max_model_len)
    }


def scripted_run(policy: Policy, steps: int = 80) -> list[tuple[str, float]]:
    """A deterministic run through a FleetState with joins, leaves, an unhealthy instance, a
    wrong-model and a too-small instance, shared prefixes and feedback; checks every decision."""
    fleet = FleetState()
    for iid in ("a", "b", "c"):
        fleet.upsert_instance(iid, MODEL, max_model_len=100_000)
    fleet.upsert_instance("small", MODEL, max_model_len=200)
    stranger = view("x", model="other")
    choices: list[tuple[str, float]] = []
    pending: list[tuple[int, str, str]] = []
    for k in range(steps):
        now = k * 0.7
        if k == 25:
            fleet.upsert_instance("d", MODEL, max_model_len=100_000)
        if k == 50:
            fleet.remove_instance("b")
        if k % 5 == 0:
            for j, iid in enumerate(fleet.instance_ids()):
                fleet.update_scrape(
                    iid,
                    num_running=(k + j) % 7,
                    num_waiting=(k * j) % 4,
                    kv_usage_frac=((k + 3 * j) % 10) / 10,
                    prefix_hit_rate=None,
                    healthy=not (iid == "c" and 30 <= k < 45),
                    at_s=now,
                )
        blocks = chain(k % 3, 100 + k % 5, *range(1000 * k, 1000 * k + k % 9))
        req = request(f"r{k}", blocks=blocks, tokens=len(blocks) * 16 + k % 16, out=8)
        candidates = [*fleet.candidates(MODEL, now), stranger]
        before_candidates = copy.deepcopy(candidates)
        before_request = copy.deepcopy(req)
        decision = policy.decide(req, candidates, now)
        allowed = _allowed(req, candidates)
        assert candidates == before_candidates and req == before_request, "inputs were mutated"
        assert decision.instance_id in allowed
        assert set(decision.scores) == allowed
        assert all(0.0 <= s <= 1.0 and not math.isnan(s) for s in decision.scores.values())
        assert 0.0 < decision.propensity <= 1.0
        assert decision.cached_prefix_tokens >= 0
        for feats in decision.features.values():
            assert all(math.isfinite(v) for v in feats.values())
        choices.append((decision.instance_id, decision.propensity))
        fleet.on_dispatch(req.request_id, decision.instance_id, req.prompt_tokens, now)
        pending.append((k, req.request_id, decision.instance_id))
        for started, rid, iid in list(pending):
            if k - started == 2:
                fleet.on_first_token(rid, now)
                policy.on_first_token(rid, iid, now)
            if k - started == 5:
                fleet.on_finish(rid, now)
                error = "boom" if started % 7 == 0 else None
                policy.on_outcome(Outcome(rid, iid, 10, 4, 0.1, 0.01, 0.5, error), now)
                pending.remove((started, rid, iid))
    return choices


def test_decisions_keep_the_contract_over_a_scripted_run(make_policy: Callable[[int], Policy]) -> None:
    scripted_run(make_policy(0))


def test_same_seed_gives_the_same_choices(make_policy: Callable[[int], Policy]) -> None:
    assert scripted_run(make_policy(7)) == scripted_run(make_policy(7))


def test_empty_candidate_list_fails_clearly(make_policy: Callable[[int], Policy]) -> None:
    with pytest.raises(NoCandidateError, match="empty"):
        make_policy(0).decide(request("r", blocks=chain(1, 2)), [], 0.0)


def test_all_unhealthy_fails_clearly(make_policy: Callable[[int], Policy]) -> None:
    candidates = [view("a", healthy=False), view("b", healthy=False)]
    with pytest.raises(
        NoCandidateError, match=r"^no instance can serve request 'r': .*none of the 2 instance\(s\) is healthy$"
    ):
        make_policy(0).decide(request("r", blocks=chain(1, 2)), candidates, 0.0)


def test_outcomes_for_unknown_requests_are_ignored(make_policy: Callable[[int], Policy]) -> None:
    policy = make_policy(0)
    policy.on_first_token("ghost", "a", 1.0)
    policy.on_outcome(Outcome("ghost", "a", 10, 1, None, None, 0.1, "lost"), 1.0)
    decision = policy.decide(request("r", blocks=chain(1)), [view("a")], 2.0)
    assert decision.instance_id == "a" and decision.propensity == 1.0
