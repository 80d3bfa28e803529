"""Learning speed and drift recovery of the learned policy measured against a reference policy
(``estimated-ttft``, which is told the hardware), from the JSON that ``learning_drift.py``
writes.

``learning_drift.py`` reports the time until Lodestar stays within 10 % of its *own* steady
state; on a trace whose load swings several-fold over the run that time follows the workload
(the non-learning reference "settles" at the same moment). Here the question is instead: from
when on does Lodestar's rolling mean TTFT stay within 10 % of the reference's, at the same
simulated times, and how do the two compare after the drift point?

    .venv/bin/python benchmarks/learning_vs_reference.py [out/benchmarks/learning_drift/learning_drift.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def within_from(ratios: list[tuple[float, float]], tolerance: float) -> float | None:
    """First time from which every ratio stays ≤ 1 + tolerance (None: never)."""
    for i, (t, _) in enumerate(ratios):
        if all(r <= 1.0 + tolerance for _, r in ratios[i:]):
            return t
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, nargs="?", default=Path("out/benchmarks/learning_drift/learning_drift.json"))
    parser.add_argument("--reference", default="estimated-ttft")
    parser.add_argument("--tolerance", type=float, default=0.10)
    args = parser.parse_args()
    data: dict[str, Any] = json.loads(args.json.read_text())
    at = float(data["args"]["at"])
    head = ("scenario", "seed", "within 10 % from (s)", "worst ratio after 60 s", "mean ratio after drift")
    print(f"{head[0]:<10} {head[1]:>4} {head[2]:>21} {head[3]:>23} {head[4]:>23}")
    for name, scenario in data["scenarios"].items():
        ref = scenario[args.reference]["curves"][0]
        key = next(k for k in ref if k != "t_s")
        ref_at = dict(zip(ref["t_s"], ref[key], strict=True))
        for seed, curve in enumerate(scenario["lodestar"]["curves"]):
            ratios = [(t, v / ref_at[t]) for t, v in zip(curve["t_s"], curve[key], strict=True) if t in ref_at]
            late = [r for t, r in ratios if t >= 60.0]
            post = [r for t, r in ratios if t >= at]
            since = within_from(ratios, args.tolerance)
            print(
                f"{name:<10} {seed:>4} {since if since is not None else 'never':>21} "
                f"{max(late):>23.3f} {sum(post) / len(post) if post else float('nan'):>23.3f}"
            )


if __name__ == "__main__":
    main()
