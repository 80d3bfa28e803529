"""What the CLI's ``<trace-name-or-path-or-spec.yaml>`` argument means, as a spec.

- a shorthand name (``lodestar workload list``) → that shared trace;
- a ``.yaml``/``.yml`` path → the spec in it;
- any other existing file → a trace whose format is recognised from its first line:
  Mooncake jsonl (``hash_ids``), Lodestar export jsonl (``request_id``), Azure CSV
  (``TIMESTAMP``), Vidur splitwise CSV (``arrived_at``), length statistics CSV
  (``num_prefill_tokens`` without times: Poisson arrivals at 1 req/s for 600 s), or a
  ServeGen ``chunk-<i>-trace.csv``.
"""

from __future__ import annotations

import json
from pathlib import Path

from lodestar.workload.catalog import SHARED_TRACE_NAMES, TraceFormat
from lodestar.workload.errors import SpecError, TraceFormatError
from lodestar.workload.spec import (
    GeneratorSource,
    LengthStatsLengths,
    NamedSource,
    PoissonConfig,
    ServeGenSource,
    TraceSource,
    WorkloadSpec,
    load_spec,
)


def spec_for_target(target: str) -> WorkloadSpec:
    """The spec a CLI target names; :class:`SpecError`/:class:`TraceFormatError` if none."""
    if target in SHARED_TRACE_NAMES:
        return WorkloadSpec(source=NamedSource(kind="named", name=target))
    path = Path(target)
    if path.suffix in (".yaml", ".yml"):
        return load_spec(path)
    if not path.is_file():
        names = ", ".join(SHARED_TRACE_NAMES)
        raise SpecError(target, f"not a shorthand name ({names}), a spec .yaml or an existing file")
    kind = sniff(path)
    if kind == "length-stats":
        return WorkloadSpec(
            source=GeneratorSource(
                kind="generator",
                duration_s=600.0,
                arrivals=PoissonConfig(process="poisson", rate_rps=1.0),
                lengths=LengthStatsLengths(kind="length-stats", path=path),
            )
        )
    if kind == "servegen":
        return WorkloadSpec(source=ServeGenSource(kind="servegen", trace_path=path))
    return WorkloadSpec(source=TraceSource(kind="trace", format=kind, path=path))


def sniff(path: Path) -> TraceFormat | str:
    """The format of a trace file from its first non-blank line (``TraceFormatError`` if unknown)."""
    try:
        with path.open(encoding="utf-8") as handle:
            first = next((line.strip() for line in handle if line.strip()), "")
    except (OSError, UnicodeDecodeError) as err:
        raise TraceFormatError(path, f"cannot read file: {err}") from None
    if first.startswith("{"):
        try:
            keys = set(json.loads(first))
        except (json.JSONDecodeError, TypeError):
            keys = set()
        if "hash_ids" in keys:
            return "mooncake"
        if "request_id" in keys:
            return "lodestar-jsonl"
    columns = [c.strip() for c in first.split(",")]
    if "TIMESTAMP" in columns:
        return "azure"
    if "arrived_at" in columns:
        return "splitwise"
    if "num_prefill_tokens" in columns:
        return "length-stats"
    if path.name.endswith("-trace.csv") and len(columns) == 6:
        return "servegen"
    raise TraceFormatError(
        path,
        "unknown trace format (expected Mooncake/Lodestar jsonl, Azure, splitwise, length-statistics or ServeGen CSV)",
        line=1,
    )
