"""The node freezes what its startup allocated, so full collections stop walking it."""

from __future__ import annotations

import gc

from brokers.node.heap import freeze_startup_heap


def test_freeze_moves_live_objects_out_of_collections() -> None:
    marker = [object() for _ in range(100)]  # tracked, alive at the freeze
    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= before + len(marker)
    finally:
        gc.unfreeze()  # the test process is not a node: give its heap back to the collector
