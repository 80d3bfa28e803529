"""The errors a workload raises when its input is bad: each names the file, line and field.

Callers (the CLI, the simulator's config loader) catch :class:`WorkloadError` and print its
message; they never need a traceback to find what to fix.
"""

from __future__ import annotations

from pathlib import Path


class WorkloadError(Exception):
    """A workload could not be read or built; ``str(err)`` says what to fix and where."""


class TraceFormatError(WorkloadError):
    """A trace or distribution file is missing, unreadable, or has a bad header or row.

    ``line`` is the 1-based physical line of the file (``None`` for file-level problems) and
    ``field`` the column or key at fault (``None`` when the whole row or file is wrong).
    """

    def __init__(self, path: Path | str, reason: str, *, line: int | None = None, field: str | None = None) -> None:
        self.path = Path(path)
        self.reason = reason
        self.line = line
        self.field = field
        where = str(path) if line is None else f"{path}, line {line}"
        what = f", field {field!r}" if field is not None else ""
        super().__init__(f"{where}{what}: {reason}")


class SpecError(WorkloadError):
    """A workload spec (YAML file or name) is invalid; ``field`` is the dotted path at fault."""

    def __init__(self, source: str, reason: str, *, field: str | None = None) -> None:
        self.source = source
        self.reason = reason
        self.field = field
        what = f", field {field!r}" if field is not None else ""
        super().__init__(f"{source}{what}: {reason}")
