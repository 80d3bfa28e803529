"""What a request stream looks like, in the figures the trace SOURCE.md tables use.

Percentiles use numpy's ``method="lower"`` (the largest sample at or below the fractional
rank ``q·(n-1)``): it reproduces every SOURCE.md table, where linear interpolation does not
(Mooncake conversation input p99: 85399 with "lower", 85400.4 with "linear").

Prefix reuse counts segments as blocks (512-token blocks for Mooncake): a prompt covers
``min(len(segments), ceil(n_tokens / segment_tokens))`` blocks, and a block is *reused* when
an earlier request had the same chain of segments up to and including it (an infinite cache
with prefix matching: a block counts only if every block before it in the prompt matched too).
Prompts with different ``segment_tokens`` never share.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from lodestar.workload.errors import WorkloadError
from lodestar.workload.request import Prompt, RequestSpec

PERCENTILE_METHOD: Final = "lower"


class LengthStats(BaseModel):
    """Token-count statistics (tokens)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: float
    p50: float
    p90: float
    p99: float
    min: int
    max: int


class WorkloadSummary(BaseModel):
    """Size, time span, rate, lengths and prefix sharing of a stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: int
    span_s: float
    mean_rps: float | None
    input_tokens: LengthStats
    output_tokens: LengthStats
    prompt_segments: int
    reused_segments: int
    prefix_reuse_frac: float
    sessions: int
    tenants: int


def length_stats(values: npt.ArrayLike) -> LengthStats:
    """Mean, p50/p90/p99 ("lower" method), min and max of non-empty token counts."""
    arr = np.asarray(values, dtype=np.int64)
    if arr.size == 0:
        raise WorkloadError("no values to summarise")
    p50, p90, p99 = np.percentile(arr, [50, 90, 99], method=PERCENTILE_METHOD)
    return LengthStats(
        mean=float(arr.mean()), p50=float(p50), p90=float(p90), p99=float(p99), min=int(arr.min()), max=int(arr.max())
    )


def prefix_reuse(prompts: Iterable[Prompt]) -> tuple[int, int]:
    """``(blocks, reused_blocks)`` over prompts in arrival order (see the module docstring)."""
    nodes: dict[tuple[int, int], int] = {}
    blocks = reused = 0
    for prompt in prompts:
        n_blocks = min(len(prompt.segments), -(-prompt.n_tokens // prompt.segment_tokens))
        blocks += n_blocks
        node = -prompt.segment_tokens  # root per segment size
        matching = True
        for segment in prompt.segments[:n_blocks]:
            key = (node, segment)
            child = nodes.get(key)
            if child is None:
                matching = False
                child = len(nodes)
                nodes[key] = child
            elif matching:
                reused += 1
            node = child
    return blocks, reused


def summarize(requests: Sequence[RequestSpec]) -> WorkloadSummary:
    """Summary of a stream sorted by arrival; :class:`WorkloadError` when it is empty.

    ``span_s`` is last minus first arrival; ``mean_rps = requests / span_s`` (``None`` when the
    span is 0).
    """
    if not requests:
        raise WorkloadError("the request stream is empty: nothing to summarise")
    span_s = requests[-1].arrival_s - requests[0].arrival_s
    blocks, reused = prefix_reuse(r.prompt for r in requests)
    return WorkloadSummary(
        requests=len(requests),
        span_s=span_s,
        mean_rps=len(requests) / span_s if span_s > 0 else None,
        input_tokens=length_stats([r.prompt.n_tokens for r in requests]),
        output_tokens=length_stats([r.output_tokens for r in requests]),
        prompt_segments=blocks,
        reused_segments=reused,
        prefix_reuse_frac=reused / blocks if blocks else 0.0,
        sessions=len({r.session_id for r in requests if r.session_id is not None}),
        tenants=len({r.tenant for r in requests if r.tenant is not None}),
    )
