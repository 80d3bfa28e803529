"""Vidur's processed Splitwise traces (``splitwise_code.csv``, ``splitwise_conv.csv``):
``arrived_at`` (seconds from the first request), ``num_prefill_tokens``, ``num_decode_tokens``.

The rows are the Azure 2023 requests with relative times; like the Azure reader, every prompt
gets fresh segments (no prefix sharing: the data has none to give).
"""

from __future__ import annotations

from pathlib import Path

from lodestar.workload.errors import TraceFormatError
from lodestar.workload.request import Prompt
from lodestar.workload.segments import SegmentIds, unique_segment_base
from lodestar.workload.traces.rows import (
    LoadedTrace,
    RawRequest,
    TokenPolicy,
    csv_rows,
    finish,
    parse_float,
    parse_int,
)

SPLITWISE_COLUMNS = ("arrived_at", "num_prefill_tokens", "num_decode_tokens")
SEGMENT_TOKENS = 512


def load_splitwise(path: Path) -> LoadedTrace:
    """Read a Vidur splitwise CSV; request ids are ``<file stem>:<line>``."""
    columns, rows_in = csv_rows(path, SPLITWISE_COLUMNS)
    i_at, i_in, i_out = (columns[name] for name in SPLITWISE_COLUMNS)
    policy = TokenPolicy(path)
    ids = SegmentIds(unique_segment_base(f"splitwise:{path.name}"))
    rows: list[RawRequest] = []
    stem = path.stem
    for line, cells in rows_in:
        arrived_s = parse_float(path, line, "arrived_at", cells[i_at])
        if arrived_s < 0:
            raise TraceFormatError(path, f"arrival must be >= 0 s, got {arrived_s}", line=line, field="arrived_at")
        input_tokens = parse_int(path, line, "num_prefill_tokens", cells[i_in])
        output_tokens = parse_int(path, line, "num_decode_tokens", cells[i_out])
        output = policy.apply(line, "num_prefill_tokens", input_tokens, "num_decode_tokens", output_tokens)
        if output is None:
            continue
        prompt = Prompt(input_tokens, ids.cover(input_tokens, SEGMENT_TOKENS), SEGMENT_TOKENS)
        rows.append((arrived_s, f"{stem}:{line}", prompt, output))
    return finish(path, rows, policy)
