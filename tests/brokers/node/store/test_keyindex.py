"""KeyIndex.committed_pos: how far the checkpoint may go as far as key rows are concerned."""

from __future__ import annotations

import time
from pathlib import Path

from brokers.node.store.keyindex import KeyIndex


def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_chunks_without_keys_advance_committed_pos_without_the_thread(tmp_path: Path) -> None:
    keys = KeyIndex(tmp_path / "keys.db", durable=False)  # not started: nothing is processed
    keys.drop_from(100)
    assert keys.committed_pos == 100
    keys.submit(None, 200)
    assert keys.committed_pos == 200
    keys.close()


def test_committed_pos_waits_for_rows_still_queued(tmp_path: Path) -> None:
    keys = KeyIndex(tmp_path / "keys.db", durable=False)
    keys.submit(None, 100)
    keys.submit([("ns%t", "k1", 100, 1)], 300)  # rows not committed: the thread is not running
    keys.submit(None, 400)
    assert keys.committed_pos == 0
    keys.start()
    wait_for(lambda: keys.committed_pos == 400)
    assert keys.lookup("ns%t", "k1", 10) == [100]
    keys.close()
