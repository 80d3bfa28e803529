"""Seeded generators: determinism, Gamma burstiness, sessions, tenants, long-context minority."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest

from lodestar.workload.arrivals import GammaArrivals, PoissonArrivals
from lodestar.workload.generator import LONG_CONTEXT_TAG, LongContextMix, RequestGenerator, SessionMix, TenantMix
from lodestar.workload.lengths import EmpiricalLengths, FixedLengths, PmfLengths, UniformLengths
from lodestar.workload.request import RequestSpec
from lodestar.workload.summary import summarize


def _times(n: int, rate_rps: float = 10.0) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / rate_rps


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: PoissonArrivals(5.0, seed=seed).times(200.0),
        lambda seed: GammaArrivals(5.0, cv=2.5, seed=seed).times(200.0),
        lambda seed: RequestGenerator(
            UniformLengths("u", 10, 4000, 1, 500),
            seed=seed,
            tenants=TenantMix(3),
            sessions=SessionMix(concurrent=4),
            long_context=LongContextMix(0.2),
        ).generate(_times(300)),
    ],
    ids=["poisson", "gamma", "generator"],
)
def test_same_seed_same_stream_other_seed_other_stream(make) -> None:  # type: ignore[no-untyped-def]
    a, b, c = make(11), make(11), make(12)
    assert len(a) > 100
    assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
    assert not (np.array_equal(a, c) if isinstance(a, np.ndarray) else a == c)


@pytest.mark.parametrize(("rate_rps", "cv"), [(50.0, 1.0), (50.0, 3.0), (20.0, 0.5)])
def test_gamma_arrivals_have_the_asked_rate_and_cv(rate_rps: float, cv: float) -> None:
    duration_s = 4_000.0
    times = GammaArrivals(rate_rps, cv=cv, seed=7).times(duration_s)
    gaps = np.diff(times)
    assert times[0] >= 0 and times[-1] < duration_s and np.all(gaps >= 0)
    assert len(times) / duration_s == pytest.approx(rate_rps, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.05)


def test_poisson_arrivals_are_exponential() -> None:
    gaps = np.diff(PoissonArrivals(30.0, seed=1).times(3_000.0))
    assert 1 / gaps.mean() == pytest.approx(30.0, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize(
    ("kwargs", "fragment"), [({"rate_rps": 0.0}, "rate_rps"), ({"rate_rps": 1.0, "cv": -1.0}, "cv")]
)
def test_arrival_parameters_are_checked(kwargs: dict[str, float], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        GammaArrivals(**kwargs)  # type: ignore[arg-type]


def _by_session(requests: list[RequestSpec]) -> dict[str, list[RequestSpec]]:
    groups: dict[str, list[RequestSpec]] = defaultdict(list)
    for r in requests:
        assert r.session_id is not None
        groups[r.session_id].append(r)
    return groups


def test_session_turns_grow_on_a_shared_history() -> None:
    sessions = SessionMix(concurrent=8, mean_turns=5, follow_up_min_tokens=20, follow_up_max_tokens=300)
    gen = RequestGenerator(UniformLengths("u", 50, 3000, 1, 400), seed=3, sessions=sessions)
    groups = _by_session(gen.generate(_times(2_000)))
    assert np.mean([len(turns) for turns in groups.values()]) == pytest.approx(5.0, rel=0.15)
    assert max(len(turns) for turns in groups.values()) >= 10
    for turns in groups.values():
        for prev, turn in itertools.pairwise(turns):
            grown = turn.prompt.n_tokens - prev.prompt.n_tokens - prev.output_tokens
            assert 20 <= grown <= 300  # previous prompt + its answer + a new user message
            prev_blocks, blocks = prev.prompt.block_hashes(), turn.prompt.block_hashes()
            assert len(prev_blocks) == prev.prompt.n_tokens // 16
            assert blocks[: len(prev_blocks)] == prev_blocks  # every full block of turn k-1 is shared
    firsts = [turns[0].prompt.block_hashes()[0] for turns in groups.values()]
    assert len(set(firsts)) == len(firsts)  # no tenants: different conversations share nothing


def test_sessions_respect_the_prompt_cap() -> None:
    sessions = SessionMix(concurrent=2, mean_turns=50, max_prompt_tokens=4_000)
    requests = RequestGenerator(FixedLengths("f", 500, 300), seed=5, sessions=sessions).generate(_times(500))
    assert max(r.prompt.n_tokens for r in requests) <= 4_000
    assert len(_by_session(requests)) > 2 * 500 / 50  # the cap ended conversations early


def test_tenants_share_their_own_system_prompt() -> None:
    tenants = TenantMix(count=3, system_prompt_tokens=1000, weights=(0.6, 0.3, 0.1))
    gen = RequestGenerator(UniformLengths("u", 1, 2000, 1, 10), seed=9, tenants=tenants)
    requests = gen.generate(_times(3_000))
    assert gen.system_prompt_tokens == 1024  # rounded up to whole 512-token segments
    by_tenant: dict[str | None, list[RequestSpec]] = defaultdict(list)
    for r in requests:
        by_tenant[r.tenant].append(r)
    assert sorted(by_tenant, key=str) == ["tenant-0", "tenant-1", "tenant-2"]
    shares = [len(by_tenant[f"tenant-{k}"]) / len(requests) for k in range(3)]
    assert shares == pytest.approx([0.6, 0.3, 0.1], abs=0.03)
    system_blocks = 1024 // 16
    prefixes = {}
    for tenant, group in by_tenant.items():
        heads = {tuple(r.prompt.block_hashes()[:system_blocks]) for r in group}
        assert len(heads) == 1  # every request of the tenant starts with the same 1024 tokens
        nexts = {r.prompt.block_hashes()[system_blocks] for r in group if r.prompt.n_tokens >= 1024 + 16}
        assert len(nexts) > 0.9 * len(group)  # then each goes its own way
        prefixes[tenant] = heads.pop()
    assert len({p[0] for p in prefixes.values()}) == 3  # tenants share nothing
    assert summarize(requests).tenants == 3


def test_a_long_context_minority_is_tagged_and_sized() -> None:
    gen = RequestGenerator(FixedLengths("f", 300, 20), seed=2, long_context=LongContextMix(0.1, 8_192, 32_768))
    requests = gen.generate(_times(5_000))
    long = [r for r in requests if LONG_CONTEXT_TAG in r.tags]
    assert len(long) / len(requests) == pytest.approx(0.1, abs=0.015)
    assert all(8_192 <= r.prompt.n_tokens <= 32_768 for r in long)
    assert all(r.prompt.n_tokens == 300 for r in requests if LONG_CONTEXT_TAG not in r.tags)
    assert np.mean([r.prompt.n_tokens for r in long]) == pytest.approx((8_192 + 32_768) / 2, rel=0.05)


def test_generated_ids_are_unique_across_calls() -> None:
    gen = RequestGenerator(FixedLengths("f", 10, 2), seed=0, sessions=SessionMix(concurrent=3))
    ids = [r.request_id for r in gen.generate(_times(50)) + gen.generate(_times(50))]
    assert len(set(ids)) == 100


def test_length_distributions_sample_what_they_hold() -> None:
    rng = np.random.default_rng(0)
    empirical = EmpiricalLengths("e", np.array([5, 7, 9]), np.array([1, 2, 3]))
    inputs, outputs = empirical.sample(rng, 1_000)
    assert set(zip(inputs.tolist(), outputs.tolist(), strict=True)) == {(5, 1), (7, 2), (9, 3)}  # rows stay paired
    pmf = PmfLengths("p", np.array([10, 20]), np.array([3.0, 1.0]), np.array([4]), np.array([2.0]))
    inputs, outputs = pmf.sample(rng, 20_000)
    assert np.mean(inputs == 10) == pytest.approx(0.75, abs=0.02) and set(outputs.tolist()) == {4}
    with pytest.raises(ValueError, match=">= 1"):
        EmpiricalLengths("bad", np.array([0, 3]), np.array([1, 1]))
