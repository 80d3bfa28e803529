"""Decision-cost benchmark of the shipped profiles (``lodestar policy bench``).

Workload: ``candidates`` instances of one model; every prompt has ``blocks`` full 16-token
blocks, the first ``shared_frac`` shared with one of 16 prefixes, the rest unique; up to 32
requests stay in flight (each gets its first token 8 decisions and its outcome 32 decisions
after dispatch), so indexes, trees and ledgers hold realistic state. The timed part is
``decide`` (which includes the plugins' ``on_picked``) and, separately, the feedback hooks.
Numbers are wall-clock on this machine; the report prints the command that reproduces them.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import deque
from dataclasses import dataclass

from lodestar import tokenizer
from lodestar.policy.contracts import Outcome, RequestView
from lodestar.policy.fleet import FleetState
from lodestar.policy.profile_spec import build_policy, load_profile
from lodestar.policy.registry import PolicyRegistry

MODEL = "bench-model"
KV_CAPACITY_BLOCKS = 28_276  # what the engine reports (our H100-SXM × Llama-3-8B profile)


@dataclass(frozen=True, slots=True)
class BenchResult:
    profile: str
    candidates: int
    blocks: int
    shared_frac: float
    decisions: int
    decide_mean_us: float
    decide_p50_us: float
    decide_p99_us: float
    feedback_mean_us: float


def _prompt(rng: random.Random, blocks: int, k: int, shared_frac: float = 0.5) -> tuple[int, ...]:
    """``blocks`` chained block hashes: the first ``shared_frac`` from one of 16 shared
    prefixes, the rest unique to the prompt."""
    shared = int(blocks * shared_frac)
    system = rng.randrange(16)
    segments = [system * 1_000_003 + j for j in range(shared)]
    segments += [(k + 17) * 1_000_003 + j for j in range(blocks - shared)]
    return tuple(tokenizer.expand_block_hashes(segments, tokenizer.BLOCK_SIZE, blocks * tokenizer.BLOCK_SIZE))


def bench_profile(
    registry: PolicyRegistry,
    name: str,
    *,
    candidates: int = 8,
    blocks: int = 1000,
    shared_frac: float = 0.5,
    decisions: int = 2000,
    seed: int = 0,
) -> BenchResult:
    policy = build_policy(load_profile(name), registry, seed=seed)
    fleet = FleetState()
    for i in range(candidates):
        fleet.upsert_instance(f"inst-{i:02d}", MODEL, max_model_len=1_000_000)
    rng = random.Random(seed)
    prompts = [_prompt(rng, blocks, k, shared_frac) for k in range(256)]
    prompt_tokens = blocks * tokenizer.BLOCK_SIZE + 7
    first: deque[tuple[str, str]] = deque()
    done: deque[tuple[str, str]] = deque()
    decide_s: list[float] = []
    feedback_s = 0.0
    feedback_n = 0
    warmup = min(200, decisions // 4)
    for k in range(decisions + warmup):
        now = k * 0.01
        if k % 50 == 0:
            for iid in fleet.instance_ids():
                fleet.update_scrape(
                    iid,
                    num_running=rng.randrange(32),
                    num_waiting=rng.randrange(8),
                    kv_usage_frac=rng.random(),
                    prefix_hit_rate=None,
                    healthy=True,
                    at_s=now,
                    kv_capacity_blocks=KV_CAPACITY_BLOCKS,
                )
        request = RequestView(f"r{k}", MODEL, prompt_tokens, prompts[k % len(prompts)], 128)
        view = fleet.candidates(MODEL, now)
        t0 = time.perf_counter()
        decision = policy.decide(request, view, now)
        t1 = time.perf_counter()
        if k >= warmup:
            decide_s.append(t1 - t0)
        fleet.on_dispatch(request.request_id, decision.instance_id, prompt_tokens, now)
        first.append((request.request_id, decision.instance_id))
        t0 = time.perf_counter()
        if len(first) > 8:
            rid, iid = first.popleft()
            fleet.on_first_token(rid, now)
            policy.on_first_token(rid, iid, now)
            done.append((rid, iid))
        if len(done) > 24:
            rid, iid = done.popleft()
            fleet.on_finish(rid, now)
            policy.on_outcome(Outcome(rid, iid, prompt_tokens, 128, 0.1, 0.02, 2.0), now)
        t1 = time.perf_counter()
        if k >= warmup:
            feedback_s += t1 - t0
            feedback_n += 1
    us = sorted(x * 1e6 for x in decide_s)
    return BenchResult(
        profile=name,
        candidates=candidates,
        blocks=blocks,
        shared_frac=shared_frac,
        decisions=decisions,
        decide_mean_us=statistics.fmean(us),
        decide_p50_us=us[len(us) // 2],
        decide_p99_us=us[min(len(us) - 1, int(len(us) * 0.99))],
        feedback_mean_us=feedback_s * 1e6 / max(1, feedback_n),
    )
