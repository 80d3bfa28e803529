"""Length-only request statistics (Sarathi/Vidur ``*_stats_llama2_tokenizer*.csv``: ShareGPT,
arXiv summarisation): header ``num_prefill_tokens,num_decode_tokens,...``, no timestamps.

They become an :class:`~lodestar.workload.lengths.EmpiricalLengths` that generators resample,
paired with a synthetic arrival process. The same token policy as the traces applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lodestar.workload.errors import TraceFormatError
from lodestar.workload.lengths import EmpiricalLengths
from lodestar.workload.traces.rows import TokenPolicy, csv_rows, parse_int

LENGTH_COLUMNS = ("num_prefill_tokens", "num_decode_tokens")


@dataclass(frozen=True)
class LoadedLengths:
    """A length distribution read from a file, with what the token policy changed."""

    path: Path
    lengths: EmpiricalLengths
    skipped_rows: int = 0
    clamped_outputs: int = 0


def load_length_stats(path: Path) -> LoadedLengths:
    """Read a length-statistics CSV (extra columns such as ``pd_ratio`` are ignored)."""
    columns, rows_in = csv_rows(path, LENGTH_COLUMNS)
    i_in, i_out = (columns[name] for name in LENGTH_COLUMNS)
    policy = TokenPolicy(path)
    inputs: list[int] = []
    outputs: list[int] = []
    for line, cells in rows_in:
        input_tokens = parse_int(path, line, "num_prefill_tokens", cells[i_in])
        output_tokens = parse_int(path, line, "num_decode_tokens", cells[i_out])
        output = policy.apply(line, "num_prefill_tokens", input_tokens, "num_decode_tokens", output_tokens)
        if output is None:
            continue
        inputs.append(input_tokens)
        outputs.append(output)
    if not inputs:
        raise TraceFormatError(path, "no rows (every row was empty or skipped)")
    lengths = EmpiricalLengths(path.stem, np.asarray(inputs, np.int64), np.asarray(outputs, np.int64))
    return LoadedLengths(path, lengths, policy.skipped_rows, policy.clamped_outputs)
