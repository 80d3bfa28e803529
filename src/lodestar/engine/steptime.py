"""Roofline step-time model: how long one engine iteration (a batch) takes.

For a batch of ``T`` scheduled tokens over ``S`` sequences, where sequence i computes ``n_i``
new tokens after ``c_i`` tokens already in its KV cache:

- compute  = (2·P_layers·T + 2·d·V·S + 4·L·H·hd·Σ n_i(c_i + (n_i+1)/2)) / (tp · peak · compute_eff)
  (linear layers on every token, the LM head on one token per sequence, causal attention);
- memory   = (weights per GPU + KV read per GPU) / (HBM bandwidth · memory_eff), KV read covering
  Σ (c_i + n_i) tokens;
- forward  = (compute^p + memory^p)^(1/p) + tensor-parallel all-reduce time (2 per layer);
- step     = forward · speed_factor + step_overhead_s + per_seq_overhead_s · S.

So prefill (large T) is compute-bound and grows with context through the attention term, and
decode (T = S, small) is memory-bound on weights plus every sequence's KV. All times in seconds.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from lodestar.engine.profiles import BYTES_PER_PARAM, InstanceProfile


class StepCostModel:
    """Step times for one instance profile. Stateless after construction; thread-safe."""

    def __init__(self, profile: InstanceProfile) -> None:
        self.profile = profile
        hw, m, tp = profile.hardware, profile.model, profile.tp
        self._linear_flops_per_token = 2.0 * m.layer_params
        self._head_flops_per_seq = 2.0 * m.hidden_size * m.vocab_size
        self._attn_flops_per_pair = 4.0 * m.num_layers * m.num_heads * m.head_dim
        self._compute_rate = tp * hw.tflops_bf16 * 1e12 * hw.compute_eff
        self._memory_rate = hw.hbm_tb_s * 1e12 * hw.memory_eff
        # Decode streams every layer's weights and the LM head; the input embedding is a lookup.
        self._weight_bytes = (m.layer_params + m.embedding_params) * BYTES_PER_PARAM / tp
        self._kv_bytes_per_token = m.kv_bytes_per_token / tp
        self._p = hw.roofline_p
        if tp > 1:
            self._comm_fixed = 2 * m.num_layers * hw.allreduce_latency_us * 1e-6
            ring = 2.0 * (tp - 1) / tp
            bytes_per_token = 2 * m.num_layers * m.hidden_size * BYTES_PER_PARAM * ring
            self._comm_per_token = bytes_per_token / (hw.interconnect_gb_s * 1e9)
        else:
            self._comm_fixed = 0.0
            self._comm_per_token = 0.0
        self._step_overhead = profile.step_overhead_s
        self._per_seq_overhead = profile.per_seq_overhead_s

    # --- components (also used by calibration) ---------------------------------------------

    def linear_time(self, n_tokens: float) -> float:
        """Transformer-layer linear operators only (no attention, LM head or overheads)."""
        c = self._linear_flops_per_token * n_tokens / self._compute_rate
        m = self._weight_bytes_layers_only() / self._memory_rate
        return float((c**self._p + m**self._p) ** (1.0 / self._p))

    def _weight_bytes_layers_only(self) -> float:
        prof = self.profile
        return prof.model.layer_params * BYTES_PER_PARAM / prof.tp

    def forward_time(self, n_tokens: float, n_seqs: float, attn_pairs: float, kv_read_tokens: float) -> float:
        """GPU time of one forward pass (no CPU overheads, no speed factor)."""
        compute = (
            self._linear_flops_per_token * n_tokens
            + self._head_flops_per_seq * n_seqs
            + self._attn_flops_per_pair * attn_pairs
        ) / self._compute_rate
        memory = (self._weight_bytes + self._kv_bytes_per_token * kv_read_tokens) / self._memory_rate
        roof = (compute**self._p + memory**self._p) ** (1.0 / self._p)
        comm = self._comm_fixed + self._comm_per_token * n_tokens if self._comm_fixed else 0.0
        return float(roof + comm)

    # --- what the scheduler uses -----------------------------------------------------------

    def step_time(
        self, n_tokens: int, n_seqs: int, attn_pairs: float, kv_read_tokens: float, speed_factor: float = 1.0
    ) -> float:
        """Wall time of one engine step (seconds)."""
        fwd = self.forward_time(n_tokens, n_seqs, attn_pairs, kv_read_tokens)
        return fwd * speed_factor + self._step_overhead + self._per_seq_overhead * n_seqs

    def decode_run_times(
        self, n_seqs: int, context_sum: int, n_steps: int, speed_factor: float = 1.0
    ) -> npt.NDArray[np.float64]:
        """Durations of ``n_steps`` consecutive decode-only steps of ``n_seqs`` sequences whose
        contexts (tokens already cached) sum to ``context_sum`` at the first step; every step
        adds one token to each sequence. Equal, step by step, to :meth:`step_time`."""
        j = np.arange(n_steps, dtype=np.float64)
        pairs = context_sum + n_seqs + n_seqs * j  # Σ (c_i + j + 1)
        compute = (
            self._linear_flops_per_token * n_seqs
            + self._head_flops_per_seq * n_seqs
            + self._attn_flops_per_pair * pairs
        ) / self._compute_rate
        memory = (self._weight_bytes + self._kv_bytes_per_token * pairs) / self._memory_rate
        roof = (compute**self._p + memory**self._p) ** (1.0 / self._p)
        comm = self._comm_fixed + self._comm_per_token * n_seqs if self._comm_fixed else 0.0
        out: npt.NDArray[np.float64] = (roof + comm) * speed_factor + (
            self._step_overhead + self._per_seq_overhead * n_seqs
        )
        return out


def batch_work(entries: list[tuple[int, int]]) -> tuple[int, int, float, float]:
    """(T, S, attention pairs, KV-read tokens) of a batch of (new tokens, cached context) entries."""
    n_tokens = 0
    pairs = 0.0
    kv_read = 0.0
    for n, c in entries:
        n_tokens += n
        pairs += n * (c + (n + 1) / 2.0)
        kv_read += c + n
    return n_tokens, len(entries), pairs, kv_read
