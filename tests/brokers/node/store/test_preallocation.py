"""Commit-log segments are preallocated ahead of the writes without changing their size, so
everything that reads the size (recovery, retention, the storage cap) is unaffected."""

from __future__ import annotations

import errno
import os
from dataclasses import replace

import pytest

from brokers.node.store import FileOps, MessageStore, NewMessage, StoreConfig

pytestmark = pytest.mark.asyncio
T = "ns%orders"


async def test_segment_size_stays_what_was_written(config: StoreConfig) -> None:
    cfg = replace(config, segment_bytes=1024 * 1024)
    store = await MessageStore.open(cfg)
    results = await store.append_many([NewMessage(T, 0, b"x" * 1000) for _ in range(20)])
    seg = store.commitlog.files.last()
    assert seg is not None
    st = os.fstat(seg.fd)
    assert st.st_size == seg.written == store.end_offset
    assert st.st_blocks * 512 >= 1024 * 1024  # the whole (small) segment is allocated ahead
    await store.close()
    store = await MessageStore.open(cfg)
    assert store.recovery_report.bytes_truncated == 0
    assert store.end_offset == results[-1].commitlog_offset + (await store.get_by_id(results[-1].msg_id)).size  # type: ignore[union-attr]
    assert store.commitlog.files.total_bytes() == store.end_offset
    await store.close()


async def test_appends_work_where_preallocation_is_unsupported(config: StoreConfig) -> None:
    class NoFallocate(FileOps):
        calls = 0

        def preallocate(self, fd: int, pos: int, length: int) -> None:
            self.calls += 1
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    ops = NoFallocate()
    store = await MessageStore.open(replace(config, file_ops=ops))
    for i in range(3):
        assert all(r.ok for r in await store.append_many([NewMessage(T, 0, b"m%d" % i)] * 50))
    assert ops.calls == 1  # tried once, then left alone
    got = await store.read(T, 0, 0, max_count=200)
    assert len(got.messages) == 150
    await store.close()
