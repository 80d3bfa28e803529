"""PNG plots of one or several runs side by side: TTFT over time (each request as a dot, a
rolling median as a line) and the TTFT CDF. Times in workload seconds."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lodestar.sim.results import RequestRecord

Series = tuple[str, Sequence[RequestRecord]]


def _wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(text, 100))


def rolling_median(t_s: np.ndarray, y: np.ndarray, points: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Median of ``y`` over a sliding window of 1/20 of the span, at ``points`` times
    (``t_s`` sorted). Windows with no sample are left out."""
    if t_s.size == 0:
        return np.array([]), np.array([])
    span = float(t_s[-1] - t_s[0])
    if span <= 0:
        return t_s[:1], np.array([float(np.median(y))])
    window = span / 20
    grid = np.linspace(t_s[0] + window, t_s[-1], points)
    xs, ys = [], []
    for t in grid:
        lo, hi = np.searchsorted(t_s, t - window), np.searchsorted(t_s, t, side="right")
        if hi > lo:
            xs.append(t)
            ys.append(float(np.median(y[lo:hi])))
    return np.array(xs), np.array(ys)


def write_plots(directory: Path, series: Sequence[Series], title: str) -> list[Path]:
    """``ttft_over_time.png`` and ``ttft_cdf.png`` in ``directory`` (created); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(9, 5))
    spread: list[float] = []
    for k, (label, records) in enumerate(series):
        pts = sorted((r.arrival_s, r.ttft_s) for r in records if r.error is None and r.ttft_s is not None)
        if not pts:
            continue
        t = np.array([p[0] for p in pts])
        y = np.array([p[1] for p in pts])
        spread.extend((float(y.min()), float(y.max())))
        color = colors[k % len(colors)]
        ax.scatter(t, y, s=6, alpha=0.35, color=color)
        xs, ys = rolling_median(t, y)
        ax.plot(xs, ys, color=color, label=f"{label} (rolling median)")
    ax.set_xlabel("arrival time (workload s)")
    ax.set_ylabel("TTFT (s)")
    if spread and min(spread) > 0 and max(spread) / min(spread) > 20:
        ax.set_yscale("log")
    ax.set_title(_wrap(f"{title}: TTFT over time"), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    over_time = directory / "ttft_over_time.png"
    fig.tight_layout()
    fig.savefig(over_time, dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 5))
    for label, records in series:
        ttft = np.sort([r.ttft_s for r in records if r.error is None and r.ttft_s is not None])
        if ttft.size:
            ax.plot(ttft, np.arange(1, ttft.size + 1) / ttft.size, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("TTFT (s)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(_wrap(f"{title}: TTFT CDF"), fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    cdf = directory / "ttft_cdf.png"
    fig.tight_layout()
    fig.savefig(cdf, dpi=110)
    plt.close(fig)
    return [over_time, cdf]
