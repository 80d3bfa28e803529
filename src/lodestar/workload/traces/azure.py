"""Azure LLM inference trace 2023 CSVs: ``TIMESTAMP,ContextTokens,GeneratedTokens``.

``TIMESTAMP`` is ``YYYY-MM-DD HH:MM:SS.fffffff`` (7 fractional digits, no time zone); it is
parsed exactly into integer nanoseconds, so arrival gaps keep their 100-ns resolution.

The trace has no prefix information, so every prompt gets its own fresh segments (512 tokens
each, ids unique within and across Azure files): no two requests share a prefix block. That
is an assumption of no sharing, not a measurement of it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from lodestar.workload.errors import TraceFormatError
from lodestar.workload.request import Prompt
from lodestar.workload.segments import SegmentIds, unique_segment_base
from lodestar.workload.traces.rows import LoadedTrace, RawRequest, TokenPolicy, csv_rows, finish, parse_int

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
SEGMENT_TOKENS = 512
_EPOCH = datetime(1970, 1, 1)


def load_azure(path: Path) -> LoadedTrace:
    """Read an Azure 2023 trace; request ids are ``<file stem>:<line>``."""
    columns, rows_in = csv_rows(path, AZURE_COLUMNS)
    i_ts, i_in, i_out = (columns[name] for name in AZURE_COLUMNS)
    policy = TokenPolicy(path)
    ids = SegmentIds(unique_segment_base(f"azure:{path.name}"))
    rows: list[RawRequest] = []
    stem = path.stem
    for line, cells in rows_in:
        ns = parse_timestamp_ns(path, line, cells[i_ts])
        input_tokens = parse_int(path, line, "ContextTokens", cells[i_in])
        output_tokens = parse_int(path, line, "GeneratedTokens", cells[i_out])
        output = policy.apply(line, "ContextTokens", input_tokens, "GeneratedTokens", output_tokens)
        if output is None:
            continue
        prompt = Prompt(input_tokens, ids.cover(input_tokens, SEGMENT_TOKENS), SEGMENT_TOKENS)
        rows.append((ns, f"{stem}:{line}", prompt, output))
    return finish(path, rows, policy, per_second=1e9)


def parse_timestamp_ns(path: Path, line: int, text: str) -> int:
    """Nanoseconds since 1970-01-01 of a naive ``YYYY-MM-DD HH:MM:SS[.f{1,9}]`` timestamp."""
    whole, _, fraction = text.strip().partition(".")
    try:
        if len(whole) != 19 or len(fraction) > 9 or (fraction and not fraction.isdigit()):
            raise ValueError(text)
        moment = datetime.fromisoformat(whole)
    except ValueError:
        raise TraceFormatError(
            path, f"expected 'YYYY-MM-DD HH:MM:SS.fffffff', got {text!r}", line=line, field="TIMESTAMP"
        ) from None
    delta = moment - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0") or 0)
