"""Pipelined group commit (sync mode): the fdatasync runs on its own thread while the writer
writes the next chunks; a failed fdatasync rolls back everything written after the last good one."""

from __future__ import annotations

import asyncio
import errno
import threading
from dataclasses import replace

import pytest

from brokers.node.store import AppendStatus, FileOps, MessageStore, NewMessage, StoreConfig

pytestmark = pytest.mark.asyncio
T = "ns%orders"


class FlakySync(FileOps):
    """Real file calls; the group-commit thread's next ``fails`` fdatasyncs raise EIO."""

    def __init__(self) -> None:
        self.fails = 0
        self.syncs_seen: list[str] = []

    def fdatasync(self, fd: int) -> None:
        name = threading.current_thread().name
        self.syncs_seen.append(name)
        if self.fails and name == "store-groupcommit":
            self.fails -= 1
            raise OSError(errno.EIO, "Input/output error")
        super().fdatasync(fd)


def body(i: int) -> bytes:
    return b"m%05d-" % i + b"x" * 200  # 8 KiB segments: a seal every ~30 records


async def test_sync_appends_are_acknowledged_by_the_group_commit_thread(config: StoreConfig) -> None:
    ops = FlakySync()
    store = await MessageStore.open(replace(config, file_ops=ops))
    results = await asyncio.gather(*(store.append(NewMessage(T, 0, body(i))) for i in range(300)))
    assert all(r.ok for r in results)
    assert sorted(r.queue_offset for r in results) == list(range(300))
    assert "store-groupcommit" in ops.syncs_seen
    assert store.writer.group_commit is not None and store.writer.group_commit.syncs > 0
    await store.close()


@pytest.mark.parametrize("segment_bytes", [8 * 1024, 1024 * 1024])  # seals during the failure, or none
async def test_failed_fsync_rolls_back_the_pipeline_and_offsets_stay_dense(
        config: StoreConfig, segment_bytes: int) -> None:
    config = replace(config, segment_bytes=segment_bytes)
    ops = FlakySync()
    store = await MessageStore.open(replace(config, file_ops=ops, disk_full_retry_s=0.0))
    sent: dict[int, bytes] = {}  # index -> body, for every append acknowledged OK
    first = await asyncio.gather(*(store.append(NewMessage(T, 0, body(i))) for i in range(100)))
    assert all(r.ok for r in first)
    sent.update((r.queue_offset, body(i)) for i, r in enumerate(first))
    ops.fails = 1
    second = await asyncio.gather(*(store.append(NewMessage(T, 0, body(1000 + i))) for i in range(400)))
    assert {r.status for r in second} <= {AppendStatus.OK, AppendStatus.IO_ERROR}
    failed = [r for r in second if r.status is AppendStatus.IO_ERROR]
    assert failed and "I/O error" in failed[0].detail
    sent.update((r.queue_offset, body(1000 + i)) for i, r in enumerate(second) if r.ok)
    third = await asyncio.gather(*(store.append(NewMessage(T, 0, body(5000 + i))) for i in range(100)))
    assert all(r.ok for r in third)
    sent.update((r.queue_offset, body(5000 + i)) for i, r in enumerate(third))
    # Acknowledged appends hold dense queue offsets; nothing refused is visible.
    assert sorted(sent) == list(range(len(sent)))
    assert store.queue_bounds(T, 0) == (0, len(sent))

    async def read_all(s: MessageStore) -> list[bytes]:
        out: list[bytes] = []
        while len(out) < len(sent):
            got = await s.read(T, 0, len(out), max_count=64)
            assert got.messages, got
            out.extend(bytes(m.body) for m in got.messages)
        return out

    want = [sent[i] for i in range(len(sent))]
    assert await read_all(store) == want
    await store.close()
    store = await MessageStore.open(config)
    assert store.recovery_report.clean and store.recovery_report.bytes_truncated == 0
    assert store.queue_bounds(T, 0) == (0, len(sent))
    assert await read_all(store) == want
    await store.close()
