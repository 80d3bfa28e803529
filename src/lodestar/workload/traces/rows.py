"""Shared plumbing of the trace readers: reading a file, checking a CSV header, parsing one
field with an error that names file, line and field, and the token-count policy."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lodestar.workload.errors import TraceFormatError
from lodestar.workload.request import Prompt, RequestSpec

RawRequest = tuple[float, str, Prompt, int]
"""One parsed row before sorting: (raw arrival, request id, prompt, output tokens)."""


@dataclass(frozen=True)
class LoadedTrace:
    """A trace read into the request stream, with what the token policy changed.

    ``requests`` are sorted by ``arrival_s`` (stable: ties keep file order) and re-based so the
    first request arrives at 0 s.
    """

    path: Path
    requests: list[RequestSpec]
    skipped_rows: int = 0
    clamped_outputs: int = 0


@dataclass
class TokenPolicy:
    """What a reader does with token counts below 1 (one instance per file read).

    - input == 0: the row is skipped (an empty prompt cannot be served) and counted in
      ``skipped_rows``;
    - output == 0: the request gets 1 output token (every served request yields at least its
      first token) and is counted in ``clamped_outputs``;
    - negative input or output: :class:`TraceFormatError` (the row is corrupt, not just odd).
    """

    path: Path
    skipped_rows: int = field(default=0)
    clamped_outputs: int = field(default=0)

    def apply(
        self, line: int, input_field: str, input_tokens: int, output_field: str, output_tokens: int
    ) -> int | None:
        """The output token count to use, or ``None`` when the row is to be skipped."""
        if input_tokens < 0:
            raise TraceFormatError(self.path, f"negative token count {input_tokens}", line=line, field=input_field)
        if output_tokens < 0:
            raise TraceFormatError(self.path, f"negative token count {output_tokens}", line=line, field=output_field)
        if input_tokens == 0:
            self.skipped_rows += 1
            return None
        if output_tokens == 0:
            self.clamped_outputs += 1
            return 1
        return output_tokens


def read_text(path: Path) -> str:
    """The whole file as UTF-8 text, or a :class:`TraceFormatError` saying why not."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TraceFormatError(path, "file not found") from None
    except IsADirectoryError:
        raise TraceFormatError(path, "is a directory, expected a file") from None
    except UnicodeDecodeError as err:
        raise TraceFormatError(path, f"not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise TraceFormatError(path, f"cannot read file: {err.strerror or err}") from None


def csv_rows(path: Path, required: Sequence[str]) -> tuple[dict[str, int], Iterator[tuple[int, list[str]]]]:
    """Column index of each ``required`` header name, and the data rows as (line, cells).

    The header must contain every required column (extra columns are allowed); blank lines
    are skipped. Quoted fields spanning lines are not supported (no trace format uses them).
    """
    lines = read_text(path).splitlines()
    if not lines or not lines[0].strip():
        raise TraceFormatError(path, f"empty file, expected a header with {', '.join(required)}", line=1)
    header = [name.strip() for name in next(csv.reader([lines[0]]))]
    missing = [name for name in required if name not in header]
    if missing:
        raise TraceFormatError(
            path,
            f"header {','.join(header)!r} lacks column(s) {', '.join(missing)} (expected {','.join(required)})",
            line=1,
            field=missing[0],
        )
    columns = {name: header.index(name) for name in required}
    return columns, _data_rows(path, lines, len(header))


def headerless_rows(path: Path, n_columns: int) -> Iterator[tuple[int, list[str]]]:
    """Data rows of a CSV without a header, each checked to have ``n_columns`` cells."""
    return _data_rows(path, read_text(path).splitlines(), n_columns, first_line=1)


def _data_rows(path: Path, lines: list[str], n_columns: int, first_line: int = 2) -> Iterator[tuple[int, list[str]]]:
    body = lines[first_line - 1 :]
    for offset, cells in enumerate(csv.reader(body)):
        line = first_line + offset
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        if len(cells) != n_columns:
            raise TraceFormatError(path, f"expected {n_columns} columns, got {len(cells)}", line=line)
        yield line, cells


def parse_int(path: Path, line: int, field_name: str, text: str) -> int:
    """An integer cell (integral floats such as ``12.0`` are accepted)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise TraceFormatError(path, f"expected an integer, got {text!r}", line=line, field=field_name) from None
    if not value.is_integer():
        raise TraceFormatError(path, f"expected an integer, got {text!r}", line=line, field=field_name)
    return int(value)


def parse_float(path: Path, line: int, field_name: str, text: str) -> float:
    """A finite float cell."""
    try:
        value = float(text)
    except ValueError:
        raise TraceFormatError(path, f"expected a number, got {text!r}", line=line, field=field_name) from None
    if not math.isfinite(value):
        raise TraceFormatError(path, f"expected a finite number, got {text!r}", line=line, field=field_name)
    return value


def finish(path: Path, rows: list[RawRequest], policy: TokenPolicy, per_second: float = 1.0) -> LoadedTrace:
    """Sort rows stably by arrival and build the stream, re-based to the first arrival.

    ``per_second`` is how many raw arrival units make a second (1000 for milliseconds);
    ``arrival_s = (raw - first_raw) / per_second``, exact for integer raw times.
    """
    if not rows:
        raise TraceFormatError(path, "no requests (every row was empty or skipped)")
    rows.sort(key=lambda row: row[0])
    first = rows[0][0]
    requests = [
        RequestSpec(request_id=rid, arrival_s=(raw - first) / per_second, prompt=prompt, output_tokens=output)
        for raw, rid, prompt, output in rows
    ]
    return LoadedTrace(path, requests, policy.skipped_rows, policy.clamped_outputs)
