"""Engine-side request state and the events an engine reports."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field


class SeqStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass(slots=True)
class EngineRequest:
    """A request inside one engine. ``num_tokens`` = prompt + generated tokens; the KV of the
    first ``computed`` of them is in the cache."""

    request_id: str
    prompt_tokens: int
    block_hashes: Sequence[int]
    max_output_tokens: int
    arrival_s: float
    output_tokens: int = 0
    computed: int = 0
    blocks: list[int] = field(default_factory=list)
    registered_blocks: int = 0
    status: SeqStatus = SeqStatus.WAITING
    first_token_s: float | None = None
    finish_s: float | None = None
    prefix_hit_tokens: int = 0
    preemptions: int = 0
    scheduled_s: float | None = None

    @property
    def num_tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    @property
    def remaining_output(self) -> int:
        return self.max_output_tokens - self.output_tokens


@dataclass(frozen=True, slots=True)
class TokenRun:
    """Every request in ``request_ids`` produced one token at each time in ``times_s``."""

    times_s: Sequence[float]
    request_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FinishedRequest:
    request_id: str
    arrival_s: float
    first_token_s: float
    finish_s: float
    prompt_tokens: int
    output_tokens: int
    prefix_hit_tokens: int
    preemptions: int
    queue_s: float

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.arrival_s

    @property
    def tpot_s(self) -> float | None:
        if self.output_tokens < 2:
            return None
        return (self.finish_s - self.first_token_s) / (self.output_tokens - 1)

    @property
    def e2e_s(self) -> float:
        return self.finish_s - self.arrival_s


@dataclass
class StepEvents:
    """What an engine did between two ``advance`` calls, in time order within each list."""

    token_runs: list[TokenRun] = field(default_factory=list)
    first_tokens: list[tuple[str, float]] = field(default_factory=list)
    finished: list[FinishedRequest] = field(default_factory=list)

    def extend(self, other: StepEvents) -> None:
        self.token_runs.extend(other.token_runs)
        self.first_tokens.extend(other.first_tokens)
        self.finished.extend(other.finished)
