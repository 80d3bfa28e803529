"""Record every garbage collection of every Python process started with this directory on
``PYTHONPATH`` that is a full one (generation 2) or stops the process for more than 10 ms.

One file per process in ``$LODESTAR_GC_PAUSES_DIR`` (nothing is recorded when it is unset):
the command line, then one line per collection: wall time, generation, pause in ms, objects
collected. ``python benchmarks/gc_pauses/summary.py DIR`` sums them up. Example::

    PYTHONPATH=benchmarks/gc_pauses LODESTAR_GC_PAUSES_DIR=out/gc-pauses \\
        .venv/bin/lodestar bench compare --fleet homo-h100x8 --router lodestar:cold ...
    .venv/bin/python benchmarks/gc_pauses/summary.py out/gc-pauses
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

_DIR = os.environ.get("LODESTAR_GC_PAUSES_DIR")
_MIN_PAUSE_S = 0.010


class _Recorder:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started = 0.0
        self.out: IO[str] | None = None

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        pause = time.perf_counter() - self.started
        if info["generation"] < 2 and pause <= _MIN_PAUSE_S:
            return
        if self.out is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.out = (self.directory / f"{os.getpid()}.log").open("a", encoding="utf-8")
            self.out.write(" ".join(sys.argv)[:300] + "\n")
        self.out.write(f"{time.time():.3f} {info['generation']} {pause * 1e3:.2f} {info['collected']}\n")
        self.out.flush()


if _DIR:
    gc.callbacks.append(_Recorder(Path(_DIR)))
