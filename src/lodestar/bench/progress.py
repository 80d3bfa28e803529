"""A rich progress bar fed by the sender's hooks: requests done out of total, with sent,
in-flight and failed counts (on stderr, so stdout keeps the summary)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from lodestar.bench.client import SendResult
from lodestar.bench.schedule import Send


class ProgressObserver:
    """Use as a context manager around the run; implements the sender's observer hooks."""

    def __init__(self, total: int, console: Console | None = None, enabled: bool = True) -> None:
        self.total = total
        self.sent = 0
        self.done = 0
        self.failed = 0
        self._progress = Progress(
            TextColumn("[bold]bench"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            disable=not enabled,
            refresh_per_second=4,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> ProgressObserver:
        self._progress.start()
        self._task = self._progress.add_task("bench", total=self.total, status=self._status())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def on_sent(self, send: Send) -> None:
        self.sent += 1
        self._update()

    def on_done(self, result: SendResult) -> None:
        self.done += 1
        if result.outcome.error is not None:
            self.failed += 1
        self._update(advance=1)

    def _status(self) -> str:
        return f"sent {self.sent} · in flight {self.sent - self.done} · failed {self.failed}"

    def _update(self, advance: int = 0) -> None:
        if self._task is not None:
            self._progress.update(self._task, advance=advance, status=self._status())
