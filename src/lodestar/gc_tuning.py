"""The garbage collector of a long-running process on the request path.

CPython's full (generation 2) collection walks every tracked object, and after importing
torch, NumPy, pydantic, FastAPI and the rest a process holds several 100,000 of them. On the
2-core machine each full collection stopped the process for 40–340 ms (found with
``benchmarks/gc_pauses``: during ``lodestar bench compare`` runs the emulator paused
152–342 ms, the gateway 85–132 ms, the load generator 110–296 ms). One such pause in the
gateway holds every stream in flight; in the emulator, every engine step; in the load
generator, every send.

What exists once a process has started (modules, classes, schemas, the object graph it serves
with) lives until it exits, so :func:`freeze_startup_heap` moves it to the permanent
generation (:func:`gc.freeze`): later collections walk only what was created after it.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect what is garbage now, then exempt every object still alive from later
    collections. Call once, when the process is ready to serve. Returns the frozen count."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
