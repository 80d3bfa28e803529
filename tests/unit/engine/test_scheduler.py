"""vLLM-style scheduling on the engine: chunked prefill, batch limits, FCFS, prefix hits,
preemption by recompute, decode runs equal to single steps. Expected batches are worked out
by hand; their durations come from the step-time model."""

from __future__ import annotations

import random

import pytest

from lodestar.engine.engine import Engine, RequestRejectedError
from lodestar.engine.profiles import InstanceProfile, instance_profile
from lodestar.engine.request import EngineRequest, FinishedRequest
from lodestar.engine.steptime import batch_work


def _profile(**kw: object) -> InstanceProfile:
    """H100 / Llama-3-8B without the API-server delay, so step arithmetic is exact."""
    return instance_profile("H100-SXM", "llama-3-8b", **({"api_overhead_s": 0.0} | kw))


def _req(rid: str, prompt: int, out: int, hashes: list[int] | None = None, at: float = 0.0) -> EngineRequest:
    return EngineRequest(rid, prompt, hashes if hashes is not None else [], out, at)


def _run(engine: Engine, until: float = 1e6) -> dict[str, FinishedRequest]:
    return {f.request_id: f for f in engine.advance(until).finished}


def _t(engine: Engine, *entries: tuple[int, int]) -> float:
    return engine.cost.step_time(*batch_work(list(entries)))


def test_chunked_prefill_splits_a_prompt_over_the_token_budget() -> None:
    engine = Engine(_profile(max_num_batched_tokens=32))
    engine.add(_req("a", 80, 2), 0.0)
    done = _run(engine)
    # 80 prompt tokens in chunks of 32, 32, 16; the first token ends the third step.
    t1, t2, t3 = _t(engine, (32, 0)), _t(engine, (32, 32)), _t(engine, (16, 64))
    assert done["a"].first_token_s == pytest.approx(t1 + t2 + t3)
    assert done["a"].finish_s == pytest.approx(t1 + t2 + t3 + _t(engine, (1, 80)))


def test_decode_tokens_go_first_and_a_new_prompt_takes_the_rest_of_the_budget() -> None:
    engine = Engine(_profile(max_num_batched_tokens=32))
    engine.add(_req("a", 16, 3), 0.0)
    t1 = _t(engine, (16, 0))
    engine.advance(t1)
    engine.add(_req("b", 40, 1), t1)
    done = _run(engine)
    # step 2: a decodes 1 token, b prefills 31; step 3: a decodes, b prefills its last 9.
    t2 = _t(engine, (1, 16), (31, 0))
    t3 = _t(engine, (1, 17), (9, 31))
    assert done["a"].finish_s == pytest.approx(t1 + t2 + t3)
    assert done["b"].first_token_s == pytest.approx(t1 + t2 + t3)


def test_max_num_seqs_keeps_later_requests_waiting_in_fcfs_order() -> None:
    engine = Engine(_profile(max_num_seqs=2))
    for rid in ("a", "b", "c", "d"):
        engine.add(_req(rid, 16, 4 if rid in ("a", "b") else 2), 0.0)
    first = engine.advance(_t(engine, (16, 0), (16, 0)) + 1e-9)
    assert [r for r, _ in first.first_tokens] == ["a", "b"]
    snap = engine.snapshot()
    assert (snap.num_running, snap.num_waiting) == (2, 2)
    done = _run(engine)
    assert done["c"].first_token_s >= done["a"].finish_s
    assert done["c"].first_token_s < done["d"].first_token_s or done["c"].first_token_s == done["d"].first_token_s
    assert engine.snapshot().num_running == 0 and engine.kv.num_used == 0


def test_prefix_hit_reuses_full_blocks_and_recomputes_at_least_one_token() -> None:
    engine = Engine(_profile())
    hashes = [101, 102, 103, 104, 105]
    engine.add(_req("a", 80, 1, hashes), 0.0)
    _run(engine)
    engine.add(_req("b", 80, 1, hashes, at=1.0), 1.0)
    done = _run(engine)
    # 80 tokens = 5 full blocks; at most (80-1)//16 = 4 blocks may hit, so 16 tokens are computed.
    assert done["b"].prefix_hit_tokens == 64
    assert done["b"].first_token_s == pytest.approx(1.0 + _t(engine, (16, 64)))
    snap = engine.snapshot()
    assert (snap.prefix_query_tokens, snap.prefix_hit_tokens) == (160, 64)


def test_partial_prefix_match() -> None:
    engine = Engine(_profile())
    engine.add(_req("a", 64, 1, [1, 2, 3, 4]), 0.0)
    _run(engine)
    engine.add(_req("b", 64, 1, [1, 2, 9, 9]), 1.0)
    assert _run(engine)["b"].prefix_hit_tokens == 32


def test_preemption_by_recompute_evicts_the_newest_request() -> None:
    # 6 blocks of 16 tokens; two requests of 32 prompt tokens each grow until they collide.
    engine = Engine(_profile(num_gpu_blocks_override=6))
    engine.add(_req("old", 32, 40, [1, 2]), 0.0)
    engine.add(_req("new", 32, 40, [3, 4]), 0.0)
    done = _run(engine)
    assert engine.num_preemptions >= 1
    assert done["old"].preemptions == 0 and done["new"].preemptions >= 1
    assert done["old"].output_tokens == 40 and done["new"].output_tokens == 40
    assert done["old"].finish_s < done["new"].finish_s
    assert engine.kv.num_used == 0


@pytest.mark.parametrize(
    ("api_overhead_s", "span_s", "max_prompt", "max_output"),
    [
        (0.0, 2.0, 3000, 300),  # busy: preemptions, chunked prefills
        (0.005, 4.0, 400, 400),  # light: long decode runs, arrivals during the API hand-off
    ],
)
def test_decode_runs_equal_single_steps(api_overhead_s: float, span_s: float, max_prompt: int, max_output: int) -> None:
    rng = random.Random(3)
    reqs = [
        (f"r{i}", rng.uniform(0, span_s), rng.randint(16, max_prompt), rng.randint(1, max_output), rng.randint(0, 5))
        for i in range(60)
    ]
    reqs.sort(key=lambda r: r[1])
    results = []
    for max_run in (1, 4096):
        engine = Engine(_profile(num_gpu_blocks_override=900, api_overhead_s=api_overhead_s), max_run_steps=max_run)
        finished: dict[str, FinishedRequest] = {}
        for rid, at, prompt, out, shared in reqs:
            finished.update({f.request_id: f for f in engine.advance(at).finished})
            hashes = [7000 + k for k in range(shared)] + [hash((rid, k)) for k in range(prompt // 16 - shared)]
            engine.add(_req(rid, prompt, out, hashes[: prompt // 16], at), at)
        finished.update(_run(engine))
        results.append((finished, engine.num_steps, engine.num_preemptions))
    single, runs = results[0][0], results[1][0]
    assert set(single) == set(runs) == {r[0] for r in reqs}
    for rid in single:
        assert runs[rid].first_token_s == pytest.approx(single[rid].first_token_s, rel=1e-9)
        assert runs[rid].finish_s == pytest.approx(single[rid].finish_s, rel=1e-9)
        assert runs[rid].prefix_hit_tokens == single[rid].prefix_hit_tokens
    assert results[1][2] == results[0][2]  # same preemptions
    assert results[1][1] < results[0][1] / 3  # runs plan far fewer times


def test_requests_that_cannot_fit_are_rejected_clearly() -> None:
    engine = Engine(_profile(max_model_len=1024))
    with pytest.raises(RequestRejectedError, match="max_model_len 1024"):
        engine.add(_req("big", 1000, 100), 0.0)
    engine.add(_req("ok", 900, 100), 0.0)
    with pytest.raises(ValueError, match="duplicate"):
        engine.add(_req("ok", 10, 1), 0.0)


def test_abort_frees_blocks_and_removes_the_request() -> None:
    engine = Engine(_profile())
    engine.add(_req("a", 512, 1000), 0.0)
    engine.add(_req("b", 512, 1000), 0.0)
    engine.advance(0.5)
    used = engine.kv.num_used
    assert engine.abort("a", 0.5)
    assert not engine.abort("a", 0.5)
    assert engine.kv.num_used < used
    done = _run(engine)
    assert set(done) == {"b"}


def test_speed_factor_slows_the_forward_pass() -> None:
    fast, slow = Engine(_profile()), Engine(_profile())
    slow.set_speed_factor(2.0, 0.0)
    for e in (fast, slow):
        e.add(_req("a", 2048, 1), 0.0)
    f, s = _run(fast)["a"], _run(slow)["a"]
    overhead = fast.profile.step_overhead_s + fast.profile.per_seq_overhead_s
    assert s.first_token_s - overhead == pytest.approx(2 * (f.first_token_s - overhead))
    with pytest.raises(ValueError, match="speed factor"):
        fast.set_speed_factor(0.0, 1.0)


def test_stall_delays_the_next_step() -> None:
    engine = Engine(_profile())
    engine.stall(5.0, 0.0)
    engine.add(_req("a", 16, 1), 0.0)
    done = _run(engine)
    assert done["a"].first_token_s == pytest.approx(5.0 + _t(engine, (16, 0)))


def test_api_overhead_delays_admission_and_cuts_a_decode_run() -> None:
    engine = Engine(_profile(api_overhead_s=0.004))
    engine.add(_req("a", 16, 500), 0.0)
    t1 = _t(engine, (16, 0))
    first = engine.advance(0.050)
    assert first.first_tokens == [("a", pytest.approx(0.004 + t1))]
    engine.add(_req("b", 16, 1), 0.050)
    done = _run(engine)
    # b reaches the scheduler at 0.054; it joins the step that starts after the one in
    # progress then, so its first token comes after 0.054 plus less than two steps.
    assert done["b"].first_token_s > 0.054
    assert done["b"].first_token_s < 0.054 + 2 * _t(engine, (1, 600), (16, 0))
    assert done["a"].output_tokens == 500


def test_a_run_planned_during_the_api_hand_off_ends_when_the_request_arrives() -> None:
    """The case that made a request wait for a whole decode run (seen as 400 ms TTFTs of
    1,000-token prompts on a lightly loaded H100 in ``lodestar bench compare``): a request is
    added while the last step of the plan is in progress and reaches the scheduler just after
    that step ends, so the next plan (a decode run) is made before it arrives."""
    engine = Engine(_profile(api_overhead_s=0.005))
    engine.add(_req("short", 16, 50), 0.0)
    engine.add(_req("long", 16, 400), 0.0)
    engine.advance(0.1)
    short_done = engine.plan_end_s()  # the run in progress ends when "short" finishes
    assert short_done is not None and short_done < 1.0
    at = short_done - 0.001
    engine.advance(at)
    engine.add(_req("new", 1000, 1), at)
    done = _run(engine)
    assert done["short"].finish_s == pytest.approx(short_done)
    step = _t(engine, (1, 100), (1000, 0))
    assert done["new"].first_token_s < at + 0.005 + 2 * step
    assert done["long"].finish_s > done["new"].first_token_s + 1.0
