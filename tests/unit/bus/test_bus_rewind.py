"""Lost-log detection: a low high watermark makes a partition suspect and sends the consumer
back one record; re-reading it proves the log intact (tansu's misreported watermark) and is
not delivered twice; nothing back within the confirmation time means the log is lost."""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka import TopicPartition

from lodestar.bus.rewind import RewindWatch

TP = TopicPartition("t", 0)


@dataclass(frozen=True)
class Rec:
    offset: int


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _watch() -> tuple[RewindWatch, Clock, list[tuple[TopicPartition, int]]]:
    clock = Clock()
    return RewindWatch(confirm_s=5.0, clock=clock), clock, []


def test_a_watermark_at_or_past_the_position_is_no_suspicion() -> None:
    w, _, seeks = _watch()
    assert [r.offset for r in w.admit(TP, [Rec(0), Rec(1), Rec(2)])] == [0, 1, 2]
    assert w.check(lambda tp: 3, lambda tp, o: seeks.append((tp, o))) == {}
    assert w.check(lambda tp: None, lambda tp, o: seeks.append((tp, o))) == {}
    assert seeks == []


def test_a_misreported_watermark_is_cleared_by_re_reading_the_last_record() -> None:
    w, clock, seeks = _watch()
    w.admit(TP, [Rec(10), Rec(11), Rec(12)])  # one batch of three: tansu says the log ends at 11
    assert w.check(lambda tp: 11, lambda tp, o: seeks.append((tp, o))) == {}
    assert seeks == [(TP, 12)]
    assert w.admit(TP, [Rec(12)]) == []  # the re-read record is not delivered twice
    assert w.verifications == 1
    clock.now = 100.0
    assert w.check(lambda tp: 11, lambda tp, o: seeks.append((tp, o))) == {}  # trusted at 11
    assert seeks == [(TP, 12)]
    assert [r.offset for r in w.admit(TP, [Rec(13)])] == [13]  # then delivery goes on


def test_a_lost_log_is_reported_once_nothing_comes_back_in_time() -> None:
    w, clock, seeks = _watch()
    w.admit(TP, [Rec(500)])
    assert w.check(lambda tp: 0, lambda tp, o: seeks.append((tp, o))) == {}
    clock.now = 4.0
    assert w.check(lambda tp: 0, lambda tp, o: seeks.append((tp, o))) == {}
    clock.now = 5.5
    assert w.check(lambda tp: 0, lambda tp, o: seeks.append((tp, o))) == {"t[0]": (501, 0)}
    assert seeks == [(TP, 500)]


def test_a_partition_no_longer_assigned_is_skipped_and_reset_forgets_everything() -> None:
    w, clock, seeks = _watch()
    w.admit(TP, [Rec(7)])

    def gone(tp: TopicPartition) -> int | None:
        raise KeyError(tp)

    assert w.check(gone, lambda tp, o: seeks.append((tp, o))) == {}
    w.reset()
    clock.now = 100.0
    assert w.check(lambda tp: 0, lambda tp, o: seeks.append((tp, o))) == {}
    assert seeks == []


def test_a_revoked_partition_is_forgotten_and_the_others_kept() -> None:
    w, clock, seeks = _watch()
    other = TopicPartition("t", 1)
    w.admit(TP, [Rec(7)])
    w.admit(other, [Rec(3)])
    assert w.check(lambda tp: 0, lambda tp, o: seeks.append((tp, o))) == {}  # both suspect
    w.forget([TP])
    assert (w.next_offset(TP), w.next_offset(other)) == (None, 4)
    clock.now = 100.0
    assert w.check(lambda tp: 0, lambda tp, o: seeks.append((tp, o))) == {"t[1]": (4, 0)}
