"""Per-(request, candidate) features: only what a router can observe, never the hardware.

- the request: prompt size, its uncached part on the candidate (from an index of this
  router's own past routing, bounded per instance by the KV blocks the engine reports, so a
  prefix the engine must have evicted since is not counted as cached), expected output length
  when known;
- the candidate's scraped state (running, waiting, KV usage, staleness) and this router's
  in-flight accounting (requests, requests still in prefill, pending uncached prefill tokens,
  and the prompt tokens of everything in flight there — the context its decode steps read);
- KV pressure: the new KV this request and the pending prefills need, over the KV the
  candidate has free (``kv_usage_frac`` of the blocks its engine reports); a prompt that does
  not fit waits for memory however fast the instance is (0 when the engine reports no size);
- self-measured statistics (:mod:`lodestar.learn.stats`): prefill speed, decode step, recent
  TTFT, and how much evidence backs them, plus ``work_ttft_log``, the TTFT that pending work
  and the measured speed imply.

Counts enter as ``log1p``; times and speeds as natural logs. ``FEATURE_SCHEMA_VERSION``
changes whenever names, order or meaning change; the router refuses a model trained on
another schema.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from lodestar import tokenizer
from lodestar.learn.stats import FleetStats
from lodestar.policy.contracts import InstanceView, Outcome, RequestView
from lodestar.policy.prefix_index import BlockPrefixIndex
from lodestar.policy.scorers.ledger import RequestLedger

FEATURE_SCHEMA_VERSION = 4
FEATURE_NAMES: tuple[str, ...] = (
    "prompt_tokens_log",
    "uncached_tokens_log",
    "cached_frac",
    "expected_output_log",
    "running_log",
    "waiting_log",
    "kv_usage_frac",
    "state_age_s",
    "inflight_requests_log",
    "inflight_prefill_requests_log",
    "pending_prefill_tokens_log",
    "active_tokens_log",
    "prefill_speed_log",
    "decode_step_log",
    "work_ttft_log",
    "recent_ttft_log",
    "stats_confidence",
    "kv_demand_log",
)
N_FEATURES = len(FEATURE_NAMES)
MAX_STATE_AGE_S = 10.0
MAX_KV_DEMAND_LOG = 5.0


@dataclass(frozen=True, slots=True)
class CandidateFeatures:
    """Feature rows aligned with the candidates, and the quantities behind them."""

    x: npt.NDArray[np.float64]  # [candidates, N_FEATURES]
    uncached_tokens: list[int]
    pending_tokens: list[int]

    def row(self, i: int) -> dict[str, float]:
        return dict(zip(FEATURE_NAMES, (float(v) for v in self.x[i]), strict=True))


class FeatureRows(Mapping[str, Mapping[str, float]]):
    """Per-candidate feature dicts for a decision, built only when read (the router writes them
    into the decision event after the response has gone out; the simulator reads one row)."""

    __slots__ = ("_extra", "_index", "_x")

    def __init__(
        self, instance_ids: Sequence[str], x: npt.NDArray[np.float64], extra: Mapping[str, Sequence[float]]
    ) -> None:
        self._index = {iid: i for i, iid in enumerate(instance_ids)}
        self._x = x
        self._extra = extra

    def __getitem__(self, instance_id: str) -> Mapping[str, float]:
        i = self._index[instance_id]
        row = dict(zip(FEATURE_NAMES, self._x[i].tolist(), strict=True))
        for name, values in self._extra.items():
            row[name] = float(values[i])
        return row

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


@dataclass(slots=True)
class _Dispatch:
    instance_id: str
    work_tokens: int
    prompt_tokens: int


class FeatureBuilder:
    """Builds feature rows and keeps the router-side state they need (prefix index, pending
    prefill ledger, instance statistics), fed by the policy hooks. Not thread-safe."""

    def __init__(
        self,
        index_ttl_s: float | None = 120.0,
        stats_alpha: float = 0.05,
        use_prefix_index: bool = True,
        use_instance_stats: bool = True,
        zeroed: Sequence[str] = (),
        index_stride: int = 4,
        index_engine_capacity: bool = True,
    ) -> None:
        """``use_prefix_index=False`` treats every prompt as uncached everywhere,
        ``use_instance_stats=False`` keeps every instance at the priors, ``zeroed`` features
        are always 0 — the ablations of the learned policy. The prefix index keeps every
        ``index_stride``-th block hash only (chained hashes stay prefix-closed), so an add costs a
        quarter of the entries at a resolution of 64 tokens. With ``index_engine_capacity`` an
        instance's index entries are an LRU of the KV blocks its engine reports (vLLM's
        ``num_gpu_blocks``), on top of the TTL."""
        if index_stride < 1:
            raise ValueError(f"index_stride must be >= 1, got {index_stride}")
        self.index_stride = index_stride
        unknown = sorted(set(zeroed) - set(FEATURE_NAMES))
        if unknown:
            raise ValueError(f"unknown features to zero: {unknown}")
        self.index = BlockPrefixIndex(ttl_s=index_ttl_s)
        self.ledger = RequestLedger()
        self.stats = FleetStats(alpha=stats_alpha)
        self.use_prefix_index = use_prefix_index
        self.use_instance_stats = use_instance_stats
        self.index_engine_capacity = index_engine_capacity
        self._zeroed = [FEATURE_NAMES.index(f) for f in zeroed]
        self._dispatched: dict[str, _Dispatch] = {}
        self._index_capacity: dict[str, int] = {}  # KV blocks last applied to each instance's index
        self._active_tokens: dict[str, int] = {}

    def build(self, request: RequestView, candidates: Sequence[InstanceView], now_s: float) -> CandidateFeatures:
        """Feature rows for ``candidates`` (on the decision path). Row by row in plain Python:
        a fleet has a few dozen candidates, where one NumPy call per feature column costs
        more than the arithmetic (the rows become one array at the end)."""
        ids = [c.instance_id for c in candidates]
        n = len(ids)
        prompt = request.prompt_tokens
        if self.use_prefix_index:
            if self.index_engine_capacity:
                self._bound_index(ids, [c.kv_capacity_blocks or 0 for c in candidates], now_s)
            strided = request.block_hashes[self.index_stride - 1 :: self.index_stride]
            matched: Sequence[int] = self.index.match(strided, ids, now_s)
        else:
            matched = [0] * n
        tokens_per_match = self.index_stride * tokenizer.BLOCK_SIZE
        pending_of, active_tokens = self.ledger.pending_prefill_tokens, self._active_tokens
        prompt_log = math.log1p(prompt)
        output_log = math.log1p(request.expected_output_tokens or 0)
        block, log1p, log, exp = tokenizer.BLOCK_SIZE, math.log1p, math.log, math.exp
        zeroed = self._zeroed
        rows: list[list[float]] = []
        uncached_tokens: list[int] = []
        pending_tokens: list[int] = []
        for c, m, (speed_log, step_log, recent_log, confidence) in zip(
            candidates, matched, self.stats.snapshots(ids), strict=True
        ):
            cached = min(m * tokens_per_match, prompt)
            uncached = prompt - cached
            pending = pending_of(c.instance_id)
            capacity = c.kv_capacity_blocks or 0
            if capacity > 0:
                free_tokens = max((1.0 - c.kv_usage_frac) * capacity * block, block)
                demand = min(log1p((pending + uncached) / free_tokens), MAX_KV_DEMAND_LOG)
            else:
                demand = 0.0
            age = c.state_age_s
            row = [
                prompt_log,
                log1p(uncached),
                cached / prompt if prompt else 0.0,
                output_log,
                log1p(c.num_running),
                log1p(c.num_waiting),
                c.kv_usage_frac,
                min(age, MAX_STATE_AGE_S) if math.isfinite(age) else MAX_STATE_AGE_S,
                log1p(c.inflight_requests),
                log1p(c.inflight_prefill_requests),
                log1p(pending),
                log1p(active_tokens.get(c.instance_id, 0)),
                speed_log,
                step_log,
                log((pending + uncached) / exp(speed_log) + 1e-3),
                recent_log,
                confidence,
                demand,
            ]
            for j in zeroed:
                row[j] = 0.0
            rows.append(row)
            uncached_tokens.append(uncached)
            pending_tokens.append(pending)
        x = np.array(rows, dtype=np.float64).reshape(n, N_FEATURES)
        return CandidateFeatures(x, uncached_tokens, pending_tokens)

    def _bound_index(self, ids: Sequence[str], capacity_blocks: Sequence[int], now_s: float) -> None:
        applied = self._index_capacity
        for iid, blocks in zip(ids, capacity_blocks, strict=True):
            if blocks and applied.get(iid) != blocks:
                applied[iid] = blocks
                self.index.set_capacity(iid, max(1, blocks // self.index_stride), now_s)

    def on_picked(self, request: RequestView, instance_id: str, uncached: int, pending: int, now_s: float) -> None:
        self.ledger.add(request.request_id, instance_id, uncached)
        self.index.add(instance_id, request.block_hashes[self.index_stride - 1 :: self.index_stride], now_s)
        self._dispatched[request.request_id] = _Dispatch(instance_id, pending + uncached, request.prompt_tokens)
        self._active_tokens[instance_id] = self._active_tokens.get(instance_id, 0) + request.prompt_tokens

    def on_first_token(self, request_id: str) -> None:
        self.ledger.first_token(request_id)

    def on_outcome(self, outcome: Outcome) -> None:
        self.ledger.finish(outcome.decision_id)
        sent = self._dispatched.pop(outcome.decision_id, None)
        if sent is None:
            return
        self._active_tokens[sent.instance_id] -= sent.prompt_tokens
        if outcome.error is not None or not self.use_instance_stats:
            return
        self.stats.observe(sent.instance_id, sent.work_tokens, outcome.ttft_s, outcome.tpot_s)

    def forget_instance(self, instance_id: str) -> None:
        self.index.remove_instance(instance_id)
        self.stats.forget(instance_id)
        self._active_tokens.pop(instance_id, None)
        self._index_capacity.pop(instance_id, None)


def targets(ttft_s: float | None, tpot_s: float | None, e2e_s: float | None) -> npt.NDArray[np.float64]:
    """Training targets (log seconds): TTFT, TPOT, end-to-end; NaN where not observed."""

    def lg(v: float | None) -> float:
        return math.log(v) if v is not None and v > 0 else math.nan

    return np.array([lg(ttft_s), lg(tpot_s), lg(e2e_s)], dtype=np.float64)


TARGET_NAMES: tuple[str, ...] = ("log_ttft_s", "log_tpot_s", "log_e2e_s")

#: The network predicts TTFT and TPOT as corrections to what measured speeds imply: target
#: ``i`` minus feature ``RESIDUAL_OF[i]`` (None: predicted directly). With an untrained
#: network the policy already ranks by pending work over measured speed.
RESIDUAL_OF: tuple[str | None, ...] = ("work_ttft_log", "decode_step_log", None)
RESIDUAL_INDEX: tuple[int | None, ...] = tuple(None if f is None else FEATURE_NAMES.index(f) for f in RESIDUAL_OF)
#: (target, feature) of every target predicted as a correction to a feature
RESIDUAL_PAIRS: tuple[tuple[int, int], ...] = tuple((t, f) for t, f in enumerate(RESIDUAL_INDEX) if f is not None)


def residual_base(x: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float64]:
    """[..., targets] baseline added to the network's output for features ``x`` [..., features]."""
    base = np.zeros((*x.shape[:-1], len(TARGET_NAMES)), dtype=np.float64)
    for t, f in RESIDUAL_PAIRS:
        base[..., t] = x[..., f]
    return base
