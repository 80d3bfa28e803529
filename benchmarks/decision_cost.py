"""Cost of one routing decision of the learned policy (features + ensemble forward + choice,
including the policy's own bookkeeping) for 8 / 32 / 128 candidates, with a trained model
loaded and a fleet that has history (prefix index, in-flight requests, statistics).

    .venv/bin/python benchmarks/decision_cost.py [--prompt-blocks 1000] [--decisions 2000] [--json out.json]

Prints P50 / P99 / mean in microseconds and writes JSON. Wall-clock on this machine: run it
when the machine is otherwise idle, and compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from lodestar.learn.features import FEATURE_NAMES, RESIDUAL_INDEX
from lodestar.learn.policy import LodestarPolicy
from lodestar.learn.trainer import OnlineTrainer
from lodestar.plugins import full_registry, resolve_profile
from lodestar.policy.contracts import InstanceView, Outcome, RequestView
from lodestar.policy.profile_spec import build_policy


def trained_policy() -> LodestarPolicy:
    rng = np.random.default_rng(0)
    trainer = OnlineTrainer(seed=0)
    for i in range(2000):
        x = rng.normal(size=len(FEATURE_NAMES))
        y = np.array([x[RESIDUAL_INDEX[0]] + 0.1 * x[0], x[RESIDUAL_INDEX[1]], x[2]])  # type: ignore[index]
        trainer.add(x, y, float(i))
    trainer.train(50, 2000.0)
    policy = build_policy(resolve_profile("lodestar"), full_registry(), seed=0)
    assert isinstance(policy, LodestarPolicy)
    if not policy.load_model(trainer.export(1)):
        raise SystemExit("the benchmark model was not accepted by the policy")
    return policy


def fleet(rnd: random.Random, n_candidates: int, model: str = "m") -> list[InstanceView]:
    """``n_candidates`` busy instances of ``model``, drawn from ``rnd``."""
    return [
        InstanceView(
            instance_id=f"i{k}",
            model=model,
            num_running=rnd.randint(0, 40),
            num_waiting=rnd.randint(0, 5),
            kv_usage_frac=rnd.random(),
            state_age_s=rnd.random() * 0.2,
            max_model_len=1_000_000,
            kv_capacity_blocks=28_276,  # the engine reports its KV size (H100-SXM × Llama-3-8B)
        )
        for k in range(n_candidates)
    ]


def run(n_candidates: int, prompt_blocks: int, decisions: int) -> dict[str, float]:
    policy = trained_policy()
    rnd = random.Random(n_candidates)
    candidates = fleet(rnd, n_candidates)
    shared = [rnd.getrandbits(63) for _ in range(prompt_blocks // 2)]
    gc.collect()
    gc.freeze()  # long-lived objects out of the collector's way, as a long-running router would
    times = []
    inflight: list[tuple[str, str, Mapping[str, float]]] = []
    for d in range(decisions + 200):
        hashes = tuple(shared + [rnd.getrandbits(63) for _ in range(prompt_blocks - len(shared))])
        request = RequestView(f"r{d}", "m", prompt_blocks * 16, hashes, expected_output_tokens=200)
        t0 = time.perf_counter()
        decision = policy.decide(request, candidates, float(d) * 0.01)
        elapsed = time.perf_counter() - t0
        if d >= 200:  # warm-up: fill the index, ledger and statistics
            times.append(elapsed)
        inflight.append((request.request_id, decision.instance_id, decision.features[decision.instance_id]))
        if len(inflight) > 50:  # keep ~50 requests in flight; outcomes as predicted (no drift)
            rid, iid, row = inflight.pop(0)
            ttft = float(np.exp(row.get("pred.log_ttft_s", -1.0)))
            policy.on_first_token(rid, iid, float(d) * 0.01)
            policy.on_outcome(Outcome(rid, iid, 1000, 100, ttft, 0.02, ttft + 2.0), float(d) * 0.01)
    if any(r.fallback for r in [decision]) or not policy.confident:
        raise SystemExit("the policy fell back to its heuristic: the benchmark would not measure the model")
    us = np.array(times) * 1e6
    return {
        "candidates": n_candidates,
        "p50_us": float(np.percentile(us, 50)),
        "p90_us": float(np.percentile(us, 90)),
        "p99_us": float(np.percentile(us, 99)),
        "mean_us": float(us.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt-blocks", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [run(n, args.prompt_blocks, args.decisions) for n in (8, 32, 128)]
    print(
        f"{'candidates':>10} {'P50 µs':>9} {'P90 µs':>9} {'P99 µs':>9} {'mean µs':>9}"
        f"   (prompt: {args.prompt_blocks} blocks)"
    )
    for r in rows:
        print(f"{r['candidates']:>10} {r['p50_us']:>9.0f} {r['p90_us']:>9.0f} {r['p99_us']:>9.0f} {r['mean_us']:>9.0f}")
    if args.json:
        args.json.write_text(json.dumps({"prompt_blocks": args.prompt_blocks, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
