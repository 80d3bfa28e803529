"""Fixtures of the workload tests: the shared traces directory and a small file writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
SHARED_TRACES = REPO_ROOT.parent / "shared" / "traces"


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    """The shared traces (present on every machine that runs CI; never skipped)."""
    assert SHARED_TRACES.is_dir(), f"shared traces missing at {SHARED_TRACES}"
    return SHARED_TRACES


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write(name, text)`` creates ``tmp_path/name`` with ``text`` and returns its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write
