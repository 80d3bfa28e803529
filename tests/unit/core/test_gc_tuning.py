"""freeze_startup_heap: what is alive at the call is exempt from later collections, what comes
after is collected as before."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from lodestar.gc_tuning import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()  # back to the usual generations for the rest of the session


def test_objects_alive_at_the_freeze_are_not_collected_later_and_new_ones_are(unfrozen: None) -> None:
    before = _Node()
    before_ref = weakref.ref(before)
    frozen = freeze_startup_heap()
    assert frozen == gc.get_freeze_count() > 0
    after = _Node()
    after_ref = weakref.ref(after)
    del before, after
    gc.collect()
    assert before_ref() is not None  # frozen: the collector no longer looks at it
    assert after_ref() is None  # created after the freeze: collected as usual
    gc.unfreeze()
    gc.collect()
    assert before_ref() is None
