"""Rows waiting to be inserted, grouped by table, with the size/age rule that says when to flush.

Pure bookkeeping, no I/O; the sink owns one per consumer session. ``dirty`` means the consumer
position moved since the last commit (events were read, even if all were dead-lettered), so a
flush is due even when no row waits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from lodestar.bus.consume import Received
from lodestar_history.rows import COLUMNS, Row, RowMappingError, table_for, to_row, unstorable_row


@dataclass
class PendingBatch:
    """Rows per table plus when the oldest unflushed read happened (monotonic seconds)."""

    max_rows: int
    flush_interval_s: float
    rows: dict[str, list[tuple[object, ...]]] = field(default_factory=dict)
    newest_ts: dict[str, datetime] = field(default_factory=dict)
    unstorable: dict[str, int] = field(default_factory=dict)
    dirty: bool = False
    first_read_at: float | None = None

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.rows.values())

    def add(self, received: Iterable[Received], now: float) -> None:
        for item in received:
            try:
                row = to_row(item.event, item.partition, item.offset)
            except RowMappingError as exc:
                table = table_for(type(item.event)) or type(item.event).__name__
                self.unstorable[table] = self.unstorable.get(table, 0) + 1
                row = unstorable_row(item.event, item.topic, item.partition, item.offset, str(exc))
            self._append(row, item.event.ts)
        self.mark_read(now)

    def mark_read(self, now: float) -> None:
        """The consumer position moved (possibly past dead-lettered messages only)."""
        self.dirty = True
        if self.first_read_at is None:
            self.first_read_at = now

    def due(self, now: float) -> bool:
        if self.size >= self.max_rows:
            return True
        return self.dirty and self.first_read_at is not None and now - self.first_read_at >= self.flush_interval_s

    def room(self) -> int:
        """How many more records to ask the consumer for before the next flush."""
        return max(1, self.max_rows - self.size)

    def tables(self) -> list[str]:
        return [t for t, rows in self.rows.items() if rows]

    def take(self, table: str) -> list[tuple[object, ...]]:
        return self.rows.get(table, [])

    def drop(self, table: str) -> None:
        """``table``'s rows are stored; forget them."""
        self.rows.pop(table, None)

    def committed(self) -> None:
        """Everything read so far is stored and committed."""
        self.rows.clear()
        self.newest_ts.clear()
        self.unstorable.clear()
        self.dirty = False
        self.first_read_at = None

    def _append(self, row: Row, ts: datetime) -> None:
        assert len(row.values) == len(COLUMNS[row.table])
        self.rows.setdefault(row.table, []).append(row.values)
        newest = self.newest_ts.get(row.table)
        if newest is None or ts > newest:
            self.newest_ts[row.table] = ts
