"""Fixtures of the history tests: one chDB directory per session, a database per need.

chDB hosts one engine per process, so every store here opens the same directory; tests that
need an empty schema get their own database in it. ``history_dataset`` holds
:func:`history_helpers.dataset`, every event inserted twice (to exercise dedupe).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from history_helpers import dataset, insert_events, open_store

from lodestar_history.store import HistoryStore


@pytest.fixture(scope="session")
def chdb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def empty_store(chdb_dir: Path) -> Iterator[HistoryStore]:
    """A migrated, empty database of its own."""
    store = open_store(chdb_dir, f"t_{uuid.uuid4().hex[:12]}")
    yield store
    store.close()


@pytest.fixture(scope="session")
def history_dataset(chdb_dir: Path) -> Iterator[HistoryStore]:
    """A database holding :func:`dataset`, every event inserted twice."""
    store = open_store(chdb_dir, "dataset")
    insert_events(store, dataset(), times=2)
    yield store
    store.close()
