"""Sum up the garbage-collection pauses recorded by ``sitecustomize.py`` in this directory.

Usage: ``python benchmarks/gc_pauses/summary.py DIR [--json OUT]``: one row per process
(command shortened), its full collections (count, longest pause) and the collections of the
younger generations that paused it more than 10 ms (count, longest, total).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

_NAMES = ("emulate", "lodestar_gateway", "lodestar_router", "lodestar_collector", "lodestar_trainer",
          "bench run", "bench compare", "vllm-router", "sglang")  # fmt: skip


def _name(command: str) -> str:
    return next((n for n in _NAMES if n in command), command[:40])


def summarize(directory: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(directory.glob("*.log")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if not lines:
            continue
        full: list[float] = []
        young: list[float] = []
        for line in lines[1:]:
            _, gen, pause, _ = line.split()
            (full if gen == "2" else young).append(float(pause))
        rows.append({
            "pid": int(path.stem),
            "process": _name(lines[0]),
            "full_collections": len(full),
            "full_max_ms": max(full, default=0.0),
            "young_over_10ms": len(young),
            "young_max_ms": max(young, default=0.0),
            "young_total_ms": round(sum(young), 1),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if not args.directory.is_dir():
        raise SystemExit(f"{args.directory}: not a directory")
    rows = summarize(args.directory)
    cols = list(rows[0]) if rows else ["process"]
    print(" | ".join(cols))
    print(" | ".join("---" for _ in cols))
    for row in rows:
        print(" | ".join(str(row[c]) for c in cols))
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
