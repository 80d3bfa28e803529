"""Write the history tests' dataset into a chDB directory, in a process of its own.

``python history_fixture.py DIR [--without-dead-letters]`` migrates ``DIR`` (database
``lodestar``) and inserts ``tests/unit/history/history_helpers.dataset()`` (every event twice,
through the history service's row mapping) plus a few events the dashboards need (a model
version with the trainer's ``train_loss`` metric), then prints the window as JSON:
{"from_ts", "to_ts"}. ``--without-dead-letters`` leaves the dead letters out: a healthy run.

chDB hosts one directory per process and the history tests keep theirs open for the whole
session, so tests that need a chDB directory of their own build and read it in subprocesses.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "history"))

from history_helpers import WINDOW, at, dataset, insert_events, open_store

from lodestar_schemas import DeadLetter, Event, ModelUpdate


def extra_events() -> list[Event]:
    weights = b"w" * 64
    return [
        ModelUpdate(
            ts=at(40),
            version=3,
            parent_version=2,
            feature_schema_version=1,
            weights_format="t/1",
            weights=weights,
            weights_sha256=hashlib.sha256(weights).hexdigest(),
            trained_samples=300,
            metrics={"train_loss": 0.25, "val_mae_log_ttft": 0.4, "val_n": 50.0, "steps": 75.0},
        )
    ]


def main(directory: Path, dead_letters: bool = True) -> None:
    events = [e for e in [*dataset(), *extra_events()] if dead_letters or not isinstance(e, DeadLetter)]
    store = open_store(directory, "lodestar")
    try:
        insert_events(store, events, times=2)
    finally:
        store.close()
    print(json.dumps(WINDOW))


if __name__ == "__main__":
    main(Path(sys.argv[1]), dead_letters="--without-dead-letters" not in sys.argv[2:])
