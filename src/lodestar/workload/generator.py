"""Synthetic request content: lengths, shared system prompts per tenant, multi-turn sessions
whose prompts grow on a shared history, and a long-context minority.

A :class:`RequestGenerator` turns arrival times (from any arrival process) into requests; it
owns a ``numpy.random.Generator`` seeded from ``seed``. Prompts are described by segments of
``segment_tokens`` tokens, so sharing shows up in :meth:`Prompt.block_hashes` and in
:meth:`Prompt.text`:

- **tenants**: tenant ``k`` has a system prompt of ``system_prompt_tokens`` tokens, rounded up
  to whole segments; each of its requests starts with those segments, then its own.
- **sessions**: ``concurrent`` conversation slots; each arrival goes to a uniformly drawn slot
  and is the next turn of that slot's conversation, or the first turn of a new one when the
  conversation has run its turns (geometric, mean ``mean_turns``) or would pass
  ``max_prompt_tokens``. Turn k's prompt is turn k-1's prompt + its answer + a new user
  message, expressed by keeping all of turn k-1's segments and appending fresh ones. (The
  partially filled last segment keeps its id: a segment is a fixed text that a shorter prompt
  cuts, so every full 16-token block of turn k-1 is a prefix block of turn k.)
  The arrival process is unchanged: sessions only decide what each arrival asks.
- **long context**: a ``fraction`` of requests get a user prompt uniform in
  [``min_tokens``, ``max_tokens``], single-turn, tagged ``long-context``.

Lengths: a first turn's user message has the sampled input length; a follow-up's is uniform in
[``follow_up_min_tokens``, ``follow_up_max_tokens``]; every output length is sampled. A
request's ``n_tokens`` includes its tenant's system prompt.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from lodestar import tokenizer
from lodestar.workload.lengths import LengthDistribution
from lodestar.workload.request import DEFAULT_MODEL, Prompt, RequestSpec
from lodestar.workload.segments import SegmentIds, random_segment_base

LONG_CONTEXT_TAG = "long-context"


@dataclass(frozen=True)
class TenantMix:
    """``count`` tenants with their own system prompts, drawn per request (or per session)
    with probabilities ``weights`` (uniform when ``None``)."""

    count: int
    system_prompt_tokens: int = 1024
    weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.count < 1 or self.system_prompt_tokens < 1:
            raise ValueError("tenant count and system_prompt_tokens must be >= 1")
        if self.weights is not None and (
            len(self.weights) != self.count or min(self.weights) < 0 or sum(self.weights) <= 0
        ):
            raise ValueError(f"weights must be {self.count} non-negative numbers with a positive sum")


@dataclass(frozen=True)
class SessionMix:
    """Multi-turn conversations (see the module docstring)."""

    concurrent: int = 32
    mean_turns: float = 4.0
    follow_up_min_tokens: int = 16
    follow_up_max_tokens: int = 256
    max_prompt_tokens: int = 32_768

    def __post_init__(self) -> None:
        if self.concurrent < 1 or self.mean_turns < 1:
            raise ValueError("concurrent must be >= 1 and mean_turns >= 1")
        if not 1 <= self.follow_up_min_tokens <= self.follow_up_max_tokens:
            raise ValueError("need 1 <= follow_up_min_tokens <= follow_up_max_tokens")
        if self.max_prompt_tokens < 1:
            raise ValueError("max_prompt_tokens must be >= 1")


@dataclass(frozen=True)
class LongContextMix:
    """A ``fraction`` (0..1) of requests with user prompts uniform in [min_tokens, max_tokens]."""

    fraction: float
    min_tokens: int = 8_192
    max_tokens: int = 32_768

    def __post_init__(self) -> None:
        if not 0 <= self.fraction <= 1:
            raise ValueError(f"fraction must be in [0, 1], got {self.fraction}")
        if not 1 <= self.min_tokens <= self.max_tokens:
            raise ValueError("need 1 <= min_tokens <= max_tokens")


@dataclass
class _Conversation:
    session_id: str
    tenant: int
    segments: tuple[int, ...]
    n_tokens: int
    last_output: int
    turns_left: int


@dataclass
class RequestGenerator:
    """Requests for given arrival times; see the module docstring for the content model."""

    lengths: LengthDistribution
    seed: int = 0
    segment_tokens: int = 512
    tenants: TenantMix | None = None
    sessions: SessionMix | None = None
    long_context: LongContextMix | None = None
    model: str = DEFAULT_MODEL
    id_prefix: str = "gen"
    _rng: np.random.Generator = field(init=False, repr=False)
    _ids: SegmentIds = field(init=False, repr=False)
    _system: list[tuple[int, ...]] = field(init=False, repr=False)
    _n_sessions: int = field(init=False, repr=False, default=0)
    _n_requests: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        if self.segment_tokens < 1 or self.segment_tokens % tokenizer.BLOCK_SIZE:
            raise ValueError(f"segment_tokens must be a positive multiple of {tokenizer.BLOCK_SIZE}")
        self._rng = np.random.default_rng(self.seed)
        self._ids = SegmentIds(random_segment_base(self._rng))
        count = self.tenants.count if self.tenants else 0
        per_tenant = math.ceil(self.tenants.system_prompt_tokens / self.segment_tokens) if self.tenants else 0
        self._system = [self._ids.take(per_tenant) for _ in range(count)]

    @property
    def system_prompt_tokens(self) -> int:
        """Tokens of each tenant's system prompt after rounding to whole segments (0 without tenants)."""
        return len(self._system[0]) * self.segment_tokens if self._system else 0

    def generate(self, arrival_s: npt.NDArray[np.float64]) -> list[RequestSpec]:
        """One request per arrival time (sorted, seconds), in arrival order."""
        n = len(arrival_s)
        rng = self._rng
        inputs, outputs = self.lengths.sample(rng, n)
        is_long = rng.random(n) < self.long_context.fraction if self.long_context else np.zeros(n, bool)
        long_inputs = (
            rng.integers(self.long_context.min_tokens, self.long_context.max_tokens, size=n, endpoint=True)
            if self.long_context
            else inputs
        )
        if self.tenants:
            weights = np.asarray(self.tenants.weights or [1.0] * self.tenants.count, dtype=np.float64)
            tenant_of = rng.choice(self.tenants.count, size=n, p=weights / weights.sum())
        else:
            tenant_of = np.zeros(n, dtype=np.int64)
        sessions = self.sessions
        slot_of = rng.integers(0, sessions.concurrent, size=n) if sessions else np.zeros(n, np.int64)
        follow_up = (
            rng.integers(sessions.follow_up_min_tokens, sessions.follow_up_max_tokens, size=n, endpoint=True)
            if sessions
            else inputs
        )
        turns = rng.geometric(1.0 / sessions.mean_turns, size=n) if sessions else np.ones(n, np.int64)
        slots: dict[int, _Conversation] = {}
        out: list[RequestSpec] = []
        tags: tuple[str, ...]
        for i in range(n):
            tenant = int(tenant_of[i])
            output = int(outputs[i])
            if is_long[i]:
                prompt, session_id, tags = self._fresh(tenant, int(long_inputs[i])), None, (LONG_CONTEXT_TAG,)
            elif sessions is None:
                prompt, session_id, tags = self._fresh(tenant, int(inputs[i])), None, ()
            else:
                slot = int(slot_of[i])
                conv = slots.get(slot)
                grown = conv.n_tokens + conv.last_output + int(follow_up[i]) if conv else 0
                if conv is None or conv.turns_left == 0 or grown > sessions.max_prompt_tokens:
                    prompt = self._fresh(tenant, int(inputs[i]))
                    conv = _Conversation(self._session_id(), tenant, prompt.segments, prompt.n_tokens, 0, int(turns[i]))
                    slots[slot] = conv
                else:
                    need = -(-grown // self.segment_tokens) - len(conv.segments)
                    prompt = Prompt(grown, conv.segments + self._ids.take(need), self.segment_tokens)
                    conv.segments, conv.n_tokens = prompt.segments, grown
                conv.last_output = output
                conv.turns_left -= 1
                tenant, session_id, tags = conv.tenant, conv.session_id, ()
            out.append(
                RequestSpec(
                    request_id=f"{self.id_prefix}-{self._n_requests + i}",
                    arrival_s=float(arrival_s[i]),
                    prompt=prompt,
                    output_tokens=output,
                    model=self.model,
                    session_id=session_id,
                    tenant=f"tenant-{tenant}" if self.tenants else None,
                    tags=tags,
                )
            )
        self._n_requests += n
        return out

    def _fresh(self, tenant: int, user_tokens: int) -> Prompt:
        system = self._system[tenant] if self._system else ()
        n_tokens = len(system) * self.segment_tokens + user_tokens
        return Prompt(n_tokens, system + self._ids.cover(user_tokens, self.segment_tokens), self.segment_tokens)

    def _session_id(self) -> str:
        self._n_sessions += 1
        return f"{self.id_prefix}-s{self._n_sessions - 1}"
