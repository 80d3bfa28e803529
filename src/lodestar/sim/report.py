"""Printing and saving comparison results: a rich table (mean ± spread over seeds), JSON,
per-request CSV, and PNG plots (rolling TTFT over time, TTFT CDF)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from lodestar.sim.curves import rolling_ttft
from lodestar.sim.results import write_records_csv
from lodestar.sim.run import PolicyRun, aggregate

COLUMNS: tuple[tuple[str, str, float], ...] = (
    ("ttft_mean_s", "TTFT mean (s)", 1.0),
    ("ttft_p50_s", "TTFT p50 (s)", 1.0),
    ("ttft_p90_s", "TTFT p90 (s)", 1.0),
    ("ttft_p99_s", "TTFT p99 (s)", 1.0),
    ("tpot_mean_s", "TPOT mean (ms)", 1e3),
    ("e2e_mean_s", "E2E mean (s)", 1.0),
    ("e2e_p99_s", "E2E p99 (s)", 1.0),
    ("throughput_tok_s", "tok/s", 1.0),
    ("prefix_hit_rate", "prefix hit", 1.0),
    ("n_errors", "errors", 1.0),
)


def comparison_table(runs: Sequence[PolicyRun], title: str) -> Table:
    agg = aggregate(runs)
    n_seeds = max(sum(1 for r in runs if r.profile == p) for p in agg) if agg else 0
    table = Table(title=title + (f" — mean ± std over {n_seeds} seeds" if n_seeds > 1 else ""))
    table.add_column("policy")
    for _, label, _ in COLUMNS:
        table.add_column(label, justify="right")
    for profile, metrics in agg.items():
        cells = []
        for key, _, scale in COLUMNS:
            m = metrics[key]
            if n_seeds > 1:
                cells.append(f"{m['mean'] * scale:.3g} ± {m['std'] * scale:.2g}")
            else:
                cells.append(f"{m['mean'] * scale:.4g}")
        table.add_row(profile, *cells)
    return table


def print_table(runs: Sequence[PolicyRun], title: str) -> None:
    Console(width=200).print(comparison_table(runs, title))


def to_json(runs: Sequence[PolicyRun], meta: dict[str, Any]) -> dict[str, Any]:
    return {
        **meta,
        "runs": [
            {
                "policy": r.profile,
                "seed": r.seed,
                "summary": r.summary.model_dump(),
                "wall_s": r.result.wall_s,
                "routed": r.result.routed,
                "models_published": len(r.published),
                "last_model_metrics": r.published[-1].metrics if r.published else None,
            }
            for r in runs
        ],
        "aggregate": aggregate(runs),
    }


def write_json(path: Path, runs: Sequence[PolicyRun], meta: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(runs, meta), indent=2, allow_nan=True))


def write_records(directory: Path, runs: Sequence[PolicyRun]) -> list[Path]:
    out = []
    for r in runs:
        path = directory / f"{Path(r.profile).stem}-seed{r.seed}.csv"
        write_records_csv(path, r.result.records)
        out.append(path)
    return out


def write_plots(directory: Path, runs: Sequence[PolicyRun], title: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    first_seed: dict[str, PolicyRun] = {}
    for r in runs:
        first_seed.setdefault(r.profile, r)
    fig, ax = plt.subplots(figsize=(9, 5))
    for profile, r in first_seed.items():
        curve = rolling_ttft(r.result.records)
        ax.plot(curve.t_s, curve.mean_ttft_s, label=profile)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("mean TTFT, rolling 60 s (s)")
    ax.set_yscale("log")
    ax.set_title(f"{title}: TTFT over time")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    over_time = directory / "ttft_over_time.png"
    fig.tight_layout()
    fig.savefig(over_time, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(9, 5))
    for profile, r in first_seed.items():
        ttft = np.sort([x.ttft_s for x in r.result.records if x.ttft_s is not None])
        if ttft.size:
            ax.plot(ttft, np.arange(1, ttft.size + 1) / ttft.size, label=profile)
    ax.set_xscale("log")
    ax.set_xlabel("TTFT (s)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(f"{title}: TTFT CDF")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    cdf = directory / "ttft_cdf.png"
    fig.tight_layout()
    fig.savefig(cdf, dpi=110)
    plt.close(fig)
    return [over_time, cdf]
