"""Reads of what is in the page cache are served on the loop; anything else goes to a thread.

The loop may only make reads that cannot wait for the disk (``preadv2`` with ``RWF_NOWAIT``);
a read that would wait, or a large one, falls back to the reader threads with the same result.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from brokers.node.store import FileOps, MessageStore, NewMessage, ReadStatus, StoreConfig
from brokers.node.store.config import NotCached
from brokers.node.store.store import INLINE_READ_MAX

pytestmark = pytest.mark.asyncio

TOPIC = "ns%orders"


class CountingOps(FileOps):
    """Counts which read the store made; ``cold`` makes every cached-only read miss."""

    def __init__(self, cold: bool = False) -> None:
        self.cold = cold
        self.cached_reads = 0
        self.thread_reads = 0

    def pread(self, fd: int, size: int, pos: int) -> bytes:
        self.thread_reads += 1
        return super().pread(fd, size, pos)

    def pread_cached(self, fd: int, size: int, pos: int) -> bytes:
        if self.cold:
            raise NotCached
        self.cached_reads += 1
        return super().pread_cached(fd, size, pos)


async def test_pread_cached_reads_cached_bytes_and_refuses_a_short_read(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"0123456789" * 100)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert FileOps().pread_cached(fd, 10, 20) == b"0123456789"
        with pytest.raises(NotCached):  # past the end: not for the loop to sort out
            FileOps().pread_cached(fd, 100, 950)
    finally:
        os.close(fd)


async def _store_with(config: StoreConfig, ops: CountingOps, bodies: list[bytes]) -> MessageStore:
    store = await MessageStore.open(replace(config, file_ops=ops))
    results = await store.append_many([NewMessage(TOPIC, 0, b) for b in bodies])
    assert all(r.ok for r in results)
    ops.cached_reads = ops.thread_reads = 0
    return store


async def test_a_small_read_of_fresh_messages_stays_on_the_loop(config: StoreConfig) -> None:
    ops = CountingOps()
    bodies = [f"order {i}".encode() for i in range(20)]
    store = await _store_with(config, ops, bodies)
    res = await store.read(TOPIC, 0, 0, max_count=20)
    assert [bytes(m.body) for m in res.messages] == bodies
    assert ops.cached_reads >= 2 and ops.thread_reads == 0  # queue entries + commit log
    await store.close()


async def test_a_read_that_would_wait_for_the_disk_gives_the_same_messages(config: StoreConfig) -> None:
    warm, cold = CountingOps(), CountingOps(cold=True)
    bodies = [os.urandom(100) for _ in range(10)]
    results = []
    for ops, sub in ((warm, "warm"), (cold, "cold")):
        store = await _store_with(replace(config, root=config.root / sub), ops, bodies)
        res = await store.read(TOPIC, 0, 3, max_count=5)
        results.append(([bytes(m.body) for m in res.messages], res.next_offset, res.status))
        await store.close()
    assert results[0] == results[1] == (bodies[3:8], 8, ReadStatus.FOUND)
    assert cold.thread_reads >= 2 and warm.thread_reads == 0


async def test_a_read_beyond_the_inline_budget_returns_what_fits_and_reads_on(
        config: StoreConfig) -> None:
    """The loop moves at most INLINE_READ_MAX of commit log per read: the read returns the
    messages within it, and the next read starts where it stopped; nothing is skipped."""
    ops = CountingOps()
    body = os.urandom(64 * 1024)
    count = INLINE_READ_MAX // len(body) + 2
    store = await _store_with(replace(config, segment_bytes=64 * 1024 * 1024), ops, [body] * count)
    first = await store.read(TOPIC, 0, 0, max_count=count, max_bytes=64 * 1024 * 1024)
    assert 0 < len(first.messages) < count
    assert sum(len(m.body) for m in first.messages) <= INLINE_READ_MAX
    assert first.next_offset == len(first.messages)
    rest = await store.read(TOPIC, 0, first.next_offset, max_count=count,
                            max_bytes=64 * 1024 * 1024)
    got = [m.queue_offset for m in first.messages + rest.messages]
    assert got == list(range(count))
    assert all(bytes(m.body) == body for m in first.messages + rest.messages)
    assert ops.thread_reads == 0
    await store.close()


async def test_a_record_larger_than_the_inline_budget_goes_to_the_reader_threads(
        config: StoreConfig) -> None:
    ops = CountingOps()
    body = os.urandom(INLINE_READ_MAX + 1024)
    store = await _store_with(replace(config, segment_bytes=64 * 1024 * 1024), ops, [body] * 2)
    res = await store.read(TOPIC, 0, 0, max_count=2, max_bytes=64 * 1024 * 1024)
    assert [bytes(m.body) for m in res.messages] == [body, body]
    assert ops.thread_reads >= 1
    await store.close()

