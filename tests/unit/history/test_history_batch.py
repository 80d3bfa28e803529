"""Batch bookkeeping: when to flush, what to insert, odd events stored as dead letters."""

from __future__ import annotations

import pytest

from lodestar.bus.consume import Received
from lodestar_history.batch import PendingBatch
from lodestar_history.rows import COLUMNS
from lodestar_history.sink import Backoff
from lodestar_schemas import Event


def _received(events: list[Event]) -> list[Received]:
    return [Received(f"t.{type(e).__name__}", 0, i, e) for i, e in enumerate(events)]


@pytest.mark.parametrize(
    ("max_rows", "interval_s", "added", "now", "due"),
    [
        (100, 1.0, 5, 0.5, False),  # few rows, young
        (100, 1.0, 5, 1.0, True),  # old enough
        (5, 60.0, 5, 0.0, True),  # full
        (100, 1.0, 0, 5.0, False),  # nothing read
    ],
    ids=["young", "aged", "full", "empty"],
)
def test_flush_is_due_by_size_or_age(
    events: list[Event], max_rows: int, interval_s: float, added: int, now: float, due: bool
) -> None:
    batch = PendingBatch(max_rows, interval_s)
    if added:
        batch.add(_received((events * added)[:added]), now=0.0)
    assert batch.due(now) is due


def test_rows_are_grouped_by_table_and_forgotten_after_commit(events: list[Event]) -> None:
    batch = PendingBatch(1000, 1.0)
    batch.add(_received(events + events), now=0.0)
    assert sorted(batch.tables()) == sorted(COLUMNS)
    assert all(len(batch.take(t)) == 2 for t in batch.tables())
    assert batch.size == 10
    assert batch.room() == 990
    batch.drop("dead_letters")
    assert "dead_letters" not in batch.tables()
    batch.committed()
    assert (batch.size, batch.dirty, batch.first_read_at, batch.tables()) == (0, False, None, [])


def test_position_moved_past_dead_letters_only_still_needs_a_commit() -> None:
    batch = PendingBatch(1000, 1.0)
    batch.mark_read(now=3.0)
    assert batch.size == 0
    assert not batch.due(3.5)
    assert batch.due(4.0)


def test_event_that_does_not_fit_is_kept_as_a_dead_letter(events: list[Event]) -> None:
    odd = next(e for e in events if type(e).__name__ == "InstanceState").model_copy(update={"num_running": 2**70})
    batch = PendingBatch(1000, 1.0)
    batch.add(_received([odd]), now=0.0)
    assert batch.tables() == ["dead_letters"]
    assert batch.unstorable == {"instance_states": 1}
    reason = dict(zip(COLUMNS["dead_letters"], batch.take("dead_letters")[0], strict=True))["reason"]
    assert reason.startswith("not storable: num_running=")


def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(0.1, 0.5)
    assert [backoff.next() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next() == 0.1
