"""The garbage-collector settings the server applies once it has started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from kplane.server import gc_tuning


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_settling_freezes_the_start_up_heap_and_widens_the_young_generation() -> None:
    gc.unfreeze()
    survivor = [{"built": "at start-up"}]
    gc_tuning.settle_after_startup()
    assert gc.get_freeze_count() > 0
    # Frozen objects sit in the permanent generation, which no collection walks.
    assert not any(o is survivor for o in gc.get_objects(generation=2))
    assert gc.get_threshold() == (gc_tuning.YOUNG_THRESHOLD, gc_tuning.MIDDLE_THRESHOLD,
                                  gc_tuning.OLD_THRESHOLD)
    assert gc_tuning.YOUNG_THRESHOLD > 700


@pytest.mark.usefixtures("restored_gc")
def test_cycles_made_after_settling_are_still_collected() -> None:
    gc_tuning.settle_after_startup()

    class Node:
        pass

    first, second = Node(), Node()
    first.other, second.other = second, first  # type: ignore[attr-defined]
    del first, second
    assert gc.collect() >= 2
