"""What a gap between requests costs the gateway's per-request Python. Each trial runs a step
once untimed, then times it again: at once (``repeated``), after the process slept for
``--gap-ms`` (as between two requests of a sequential stream: the direct path's TTFT here is
~15 ms), or after it spun for as long (the same time passed, the process kept running). Trials
of every step and condition interleaved in one process.

    .venv/bin/python benchmarks/idle_penalty.py [--trials 300] [--gap-ms 15] [--json out/benchmarks/idle_penalty.json]

Steps (the gateway's real code; the request of ``router_overhead.py``, a 171-token chat prompt):
``parse`` (``parse_request``: JSON, validation, tokenising, block hashes), ``decide-1`` and
``decide-8`` (the learned policy with a trained model, ``decision_cost.py``'s, over 1 and 8
candidates), ``parse+decide-1`` (one after the other, as a request runs them) and ``control``
(a loop of integer arithmetic that touches a few cache lines). Prints P50 / P90 per condition
and the ratios after sleep / repeated and after spin / repeated; writes JSON.

Why: inside the running gateway the same code took ~3× its tight-loop time (README, data-path
overhead). What this shows on the 2-core VM here: after 15 ms the steps cost ~3× what they
cost when repeated at once, whether the process slept or spun meanwhile, and more the longer
the gap (run it with ``--gap-ms 1`` and ``5``), while the small loop pays nearly nothing:
the cost of a large code and data footprint coming back into caches that other work on the
host emptied, not of the process's own idling.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decision_cost import fleet, trained_policy
from router_overhead import MODEL, _body

from lodestar.learn.policy import LodestarPolicy
from lodestar.policy.contracts import Outcome, RequestView
from lodestar_gateway.inputs import Limits, parse_request

CONDITIONS = ("repeated", "after sleep", "after spin")


class Steps:
    """Each step as a zero-argument callable; decisions are settled right away (outside the
    timed call) so the policy's in-flight state stays small, as in a sequential stream."""

    def __init__(self) -> None:
        self.body = _body(2)
        self.limits = Limits(max_prompt_tokens=100_000, max_output_tokens=100_000)
        parsed = parse_request("chat", self.body, self.limits)
        self.prompt_tokens, self.hashes = parsed.prompt_tokens, tuple(parsed.block_hashes)
        self.policy: LodestarPolicy = trained_policy()
        self.fleets = {k: fleet(random.Random(k), k, MODEL) for k in (1, 8)}
        self.n = 0
        self.now_s = 0.0

    def parse(self) -> None:
        parse_request("chat", self.body, self.limits)

    def decide(self, k: int) -> Callable[[], None]:
        def run() -> None:
            self._decide(k)

        return run

    def parse_decide(self) -> None:
        parse_request("chat", self.body, self.limits)
        self._decide(1)

    def _decide(self, k: int) -> None:
        self.n += 1
        self.now_s += 0.02
        request = RequestView(f"r{self.n}", MODEL, self.prompt_tokens, self.hashes, expected_output_tokens=2)
        decision = self.policy.decide(request, self.fleets[k], self.now_s)
        self._pending = (request.request_id, decision.instance_id, decision.features[decision.instance_id])

    def settle(self) -> None:
        """The last decision's first token and outcome, as predicted (no drift)."""
        pending = getattr(self, "_pending", None)
        if pending is None:
            return
        rid, iid, row = pending
        ttft = float(np.exp(row.get("pred.log_ttft_s", -3.0)))
        self.policy.on_first_token(rid, iid, self.now_s)
        self.policy.on_outcome(Outcome(rid, iid, self.prompt_tokens, 2, ttft, 0.01, ttft + 0.01), self.now_s)
        self._pending = None


def control() -> None:
    s = 0
    for i in range(3000):
        s += i * i


def spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def measure(trials: int, gap_s: float) -> dict[str, dict[str, list[float]]]:
    steps = Steps()
    named: dict[str, Callable[[], None]] = {
        "parse": steps.parse,
        "decide-1": steps.decide(1),
        "decide-8": steps.decide(8),
        "parse+decide-1": steps.parse_decide,
        "control": control,
    }
    for fn in named.values():  # warm-up: imports, the policy's index and statistics
        for _ in range(200):
            fn()
            steps.settle()
    gc.collect()
    gc.freeze()  # as the services do once ready (lodestar.gc_tuning)
    times: dict[str, dict[str, list[float]]] = {name: {c: [] for c in CONDITIONS} for name in named}
    plan = [(name, c) for name in named for c in CONDITIONS] * trials
    random.Random(0).shuffle(plan)
    for name, condition in plan:
        fn = named[name]
        fn()  # untimed: the step's code and data are as fresh as they can be
        steps.settle()
        if condition == "after sleep":
            time.sleep(gap_s)
        elif condition == "after spin":
            spin(gap_s)
        t0 = time.perf_counter_ns()
        fn()
        elapsed = time.perf_counter_ns() - t0
        steps.settle()
        times[name][condition].append(elapsed / 1000)
    return times


def summarise(times: dict[str, dict[str, list[float]]]) -> list[dict[str, Any]]:
    rows = []
    for name, by_condition in times.items():
        row: dict[str, Any] = {"step": name}
        for c, us in by_condition.items():
            row[c] = {"p50_us": float(np.percentile(us, 50)), "p90_us": float(np.percentile(us, 90)), "n": len(us)}
        row["sleep_over_repeated"] = row["after sleep"]["p50_us"] / row["repeated"]["p50_us"]
        row["spin_over_repeated"] = row["after spin"]["p50_us"] / row["repeated"]["p50_us"]
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=300, help="timed calls per step and condition")
    parser.add_argument("--gap-ms", type=float, default=15.0, help="sleep / spin before each timed call")
    parser.add_argument("--json", type=Path, default=Path("out/benchmarks/idle_penalty.json"))
    args = parser.parse_args()
    if args.trials < 10:
        parser.error("--trials must be at least 10")
    if args.gap_ms <= 0:
        parser.error("--gap-ms must be positive")
    torch.set_num_threads(1)
    started = datetime.now(UTC).isoformat()
    load_before = list(os.getloadavg())
    rows = summarise(measure(args.trials, args.gap_ms / 1000))
    print(f"P50 / P90 in µs; {args.trials} trials per cell, gap {args.gap_ms:g} ms, trials interleaved")
    print(f"{'step':<16}" + "".join(f"{c:>20}" for c in CONDITIONS) + f"{'sleep/rep':>11}{'spin/rep':>10}")
    for r in rows:
        cells = "".join(f"{r[c]['p50_us']:>11.0f} / {r[c]['p90_us']:<6.0f}" for c in CONDITIONS)
        print(f"{r['step']:<16}{cells}{r['sleep_over_repeated']:>10.2f}×{r['spin_over_repeated']:>9.2f}×")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "benchmark": "idle_penalty",
        "started_at": started,
        "argv": sys.argv,
        "gap_ms": args.gap_ms,
        "trials": args.trials,
        "load_before": load_before,
        "load_after": list(os.getloadavg()),
        "rows": rows,
    }
    args.json.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
