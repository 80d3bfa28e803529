"""Mooncake FAST'25 traces (JSON Lines): ``timestamp`` (ms), ``input_length``,
``output_length``, ``hash_ids`` (one id per 512-token block of the input, last block partial).

Each prompt's segments are its ``hash_ids`` unchanged, with ``segment_tokens=512``, so two
requests share a prefix block exactly when the trace says they do. The traces carry no
session or tenant ids; those fields stay ``None``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lodestar.workload.errors import TraceFormatError
from lodestar.workload.request import Prompt
from lodestar.workload.traces.rows import LoadedTrace, RawRequest, TokenPolicy, finish, read_text

MOONCAKE_BLOCK_TOKENS = 512


def load_mooncake(path: Path) -> LoadedTrace:
    """Read a Mooncake jsonl trace; request ids are ``<file stem>:<line>``."""
    policy = TokenPolicy(path)
    rows: list[RawRequest] = []
    stem = path.stem
    for index, text in enumerate(read_text(path).splitlines()):
        if not text.strip():
            continue
        line = index + 1
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise TraceFormatError(path, f"not a JSON object ({err.msg})", line=line) from None
        if not isinstance(record, dict):
            raise TraceFormatError(path, f"expected a JSON object, got {type(record).__name__}", line=line)
        timestamp = _number(path, line, record, "timestamp")
        input_tokens = _count(path, line, record, "input_length")
        output_tokens = _count(path, line, record, "output_length")
        hash_ids = record.get("hash_ids")
        if not isinstance(hash_ids, list) or not _non_negative_ints(hash_ids):
            raise TraceFormatError(path, "expected a list of non-negative integers", line=line, field="hash_ids")
        output = policy.apply(line, "input_length", input_tokens, "output_length", output_tokens)
        if output is None:
            continue
        prompt = Prompt(n_tokens=input_tokens, segments=tuple(hash_ids), segment_tokens=MOONCAKE_BLOCK_TOKENS)
        rows.append((timestamp, f"{stem}:{line}", prompt, output))
    return finish(path, rows, policy, per_second=1000.0)


def _non_negative_ints(values: list[Any]) -> bool:
    """Every value is an ``int`` (not a bool) >= 0 (C-speed checks: this runs per block)."""
    return set(map(type, values)) <= {int} and min(values, default=0) >= 0


def _number(path: Path, line: int, record: dict[str, Any], key: str) -> float:
    value = record.get(key)
    if (type(value) is int or (type(value) is float and math.isfinite(value))) and value >= 0:
        return value
    raise TraceFormatError(path, f"expected a number >= 0, got {value!r}", line=line, field=key)


def _count(path: Path, line: int, record: dict[str, Any], key: str) -> int:
    value = record.get(key)
    if type(value) is not int:
        raise TraceFormatError(path, f"expected an integer, got {value!r}", line=line, field=key)
    return value
