"""Telling a lost log from a misreported high watermark, for :class:`~lodestar.bus.consume.EventConsumer`.

A broker that lost its log (a restarted broker with memory storage, a topic deleted and created
again) answers fetches with a high watermark below the offset a consumer has read up to; the
consumer would wait, silently, until the new log grows past that offset and skip everything
before it. But the local broker (tansu) also misreports the high watermark of an intact log (it
reports the first offset of the last batch + 1, and briefly 0 after a pause), so a low
watermark alone proves nothing.

So a low watermark only makes a partition *suspect*: the consumer is sent back one record
(``seek(next - 1)``) to re-read the last record it delivered. If the log still holds it (or
anything at or beyond it), the watermark was misreported: the partition is trusted at that
watermark and the re-read records are not delivered again. If nothing comes back within
``confirm_s``, the log is gone and :meth:`RewindWatch.check` reports the partition. A log lost
and grown back past the consumer's offset before the check cannot be told apart (no broker
says so); only real Kafka, which keeps its log, avoids that.

Pure state; the caller supplies the watermark look-up and the seek. Event-loop only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from aiokafka import TopicPartition


class _Record(Protocol):
    @property
    def offset(self) -> int: ...


R = TypeVar("R", bound=_Record)


@dataclass(slots=True)
class _Suspect:
    highwater: int
    since_s: float


class RewindWatch:
    """Per partition: the next offset to deliver, suspicions and their confirmation."""

    def __init__(self, confirm_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.confirm_s = confirm_s
        self.clock = clock
        self.verifications = 0  # suspicions cleared by re-reading the last record
        self._next: dict[TopicPartition, int] = {}
        self._suspects: dict[TopicPartition, _Suspect] = {}
        self._trusted: dict[TopicPartition, int] = {}  # watermark known to be misreported

    def reset(self) -> None:
        """Forget every position (after a seek to the beginning)."""
        self._next.clear()
        self._suspects.clear()
        self._trusted.clear()

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Forget ``partitions`` (revoked in a rebalance: when one comes back, another member
        of the group may have read it on, and this consumer resumes from that member's commit)."""
        for tp in partitions:
            self._next.pop(tp, None)
            self._suspects.pop(tp, None)
            self._trusted.pop(tp, None)

    def next_offset(self, tp: TopicPartition) -> int | None:
        """The offset after the last record of ``tp`` delivered; None before the first."""
        return self._next.get(tp)

    def admit(self, tp: TopicPartition, records: Sequence[R]) -> list[R]:
        """The records of ``tp`` to deliver: all of them, except those re-read to clear a
        suspicion (already delivered once)."""
        out = list(records)
        if not out:
            return out
        suspect = self._suspects.pop(tp, None)
        if suspect is not None:
            self._trusted[tp] = suspect.highwater
            self.verifications += 1
            next_offset = self._next.get(tp, 0)
            out = [r for r in out if r.offset >= next_offset]
        if out:
            self._next[tp] = out[-1].offset + 1
        return out

    def check(
        self, highwater: Callable[[TopicPartition], int | None], seek: Callable[[TopicPartition, int], None]
    ) -> dict[str, tuple[int, int]]:
        """Partitions whose log is confirmed lost: ``"topic[partition]"`` → (read up to, log
        end). Starts verifying newly suspect partitions (a seek)."""
        lost: dict[str, tuple[int, int]] = {}
        now = self.clock()
        for tp, next_offset in self._next.items():
            try:
                hw = highwater(tp)
            except Exception:  # no longer assigned (rebalance)
                continue
            if hw is None or hw >= next_offset:
                self._suspects.pop(tp, None)
                self._trusted.pop(tp, None)
                continue
            if self._trusted.get(tp) == hw:
                continue
            suspect = self._suspects.get(tp)
            if suspect is None:
                self._suspects[tp] = _Suspect(hw, now)
                seek(tp, max(0, next_offset - 1))
            elif now - suspect.since_s > self.confirm_s:
                lost[f"{tp.topic}[{tp.partition}]"] = (next_offset, hw)
        return lost
