"""The service settles its start-up heap before serving: frozen, out of every collection."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from connector.heap import settle_heap


@pytest.fixture
def restored_collector() -> Iterator[None]:
    thresholds = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_collector")
def test_start_up_objects_are_frozen_and_collections_are_rarer() -> None:
    survivor = [object() for _ in range(1000)]  # long-lived, like the loaded schemas
    before = gc.get_threshold()
    settle_heap()
    assert gc.get_freeze_count() >= len(survivor)
    assert gc.get_threshold()[0] > before[0]
    assert gc.get_threshold() == (20_000, 50, 100)
