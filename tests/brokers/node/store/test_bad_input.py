"""Refusals with a clear status: bad topics, oversize messages, reserved bytes, full disk."""

from __future__ import annotations

import errno
from dataclasses import replace
from pathlib import Path

import pytest

from brokers.node.store import (
    AppendStatus, FileOps, MessageStore, NewMessage, ReadStatus, StoreConfig, StoreLockedError,
    StoreState, topic_problem,
)

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize("topic", [
    "ns%orders", "ns%a-b_c%d", "ns%" + "x" * 127, "ns%%SYS%retry%group-1", "n-s_1%T",
])
async def test_valid_topics(topic: str) -> None:
    assert topic_problem(topic) is None


@pytest.mark.parametrize("topic", [
    "orders", "ns%", "ns%" + "x" * 128, "ns%bad topic", "ns%a/b", "ns%ünï", "%orders", "n s%t",
    "ns%%SYS%", "ns%a.b",
])
async def test_invalid_topics_are_refused_with_a_reason(config: StoreConfig, topic: str) -> None:
    store = await MessageStore.open(config)
    res = await store.append(NewMessage(topic, 0, b"x"))
    assert res.status is AppendStatus.INVALID_TOPIC and res.detail
    assert store.queues(topic) == []
    await store.close()


async def test_oversize_and_reserved_bytes_are_refused_per_message(config: StoreConfig) -> None:
    store = await MessageStore.open(replace(config, max_message_bytes=1000))
    results = await store.append_many([
        NewMessage("ns%t", 0, b"a" * 1000),
        NewMessage("ns%t", 0, b"b" * 1001),
        NewMessage("ns%t", 0, b"c", properties={"k": "v\x01x"}),
        NewMessage("ns%t", 0, b"d", keys=("a\x03b",)),
        NewMessage("ns%t", -1, b"e"),
        NewMessage("ns%t", 0, b"f"),
    ])
    assert [r.status for r in results] == [
        AppendStatus.OK, AppendStatus.MESSAGE_TOO_LARGE, AppendStatus.INVALID_PROPERTIES,
        AppendStatus.INVALID_PROPERTIES, AppendStatus.INVALID_TOPIC, AppendStatus.OK]
    assert "1001" in results[1].detail
    assert [r.queue_offset for r in results if r.ok] == [0, 1]  # refused ones take no offset
    await store.close()
    # A record that cannot fit a segment is too large whatever max_message_bytes says.
    store = await MessageStore.open(replace(config, max_message_bytes=10**6))
    big = await store.append(NewMessage("ns%t", 0, b"z" * config.segment_bytes))
    assert big.status is AppendStatus.MESSAGE_TOO_LARGE
    await store.close()


async def test_closed_store_refuses_and_second_opener_is_locked_out(config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    with pytest.raises(StoreLockedError):
        await MessageStore.open(config)
    await store.close()
    assert (await store.append(NewMessage("ns%t", 0, b"x"))).status is AppendStatus.STORE_CLOSED
    assert store.writable_state is StoreState.CLOSED


class FullDisk(FileOps):
    """Real file calls, except that writes fail with ENOSPC while ``full`` is set."""

    def __init__(self) -> None:
        self.full = False

    def pwrite(self, fd: int, data: bytes | bytearray | memoryview, pos: int) -> int:
        if self.full:
            # Like a real full disk: part of the data may land before the error.
            super().pwrite(fd, bytes(memoryview(data)[: len(data) // 2]), pos)
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().pwrite(fd, data, pos)


async def test_disk_full_refuses_writes_serves_reads_and_recovers(config: StoreConfig, clock) -> None:  # type: ignore[no-untyped-def]
    disk = FullDisk()
    cfg = replace(config, file_ops=disk, disk_full_retry_s=5.0)
    store = await MessageStore.open(cfg)
    ok = await store.append_many([NewMessage("ns%t", 0, b"%d" % i) for i in range(10)])
    disk.full = True
    failed = await store.append_many([NewMessage("ns%t", 0, b"lost-%d" % i) for i in range(5)])
    assert {r.status for r in failed} == {AppendStatus.DISK_FULL}
    assert "disk full" in failed[0].detail and "No space left" in failed[0].detail
    assert store.writable_state is StoreState.DISK_FULL
    # Refused at once (no disk call) until the retry delay passes.
    again = await store.append(NewMessage("ns%t", 0, b"x"))
    assert again.status is AppendStatus.DISK_FULL
    got = await store.read("ns%t", 0, 0, max_count=100)
    assert got.status is ReadStatus.FOUND and [bytes(x.body) for x in got.messages] == [b"%d" % i for i in range(10)]
    disk.full = False
    clock.advance(6000)
    back = await store.append(NewMessage("ns%t", 0, b"back"))
    assert back.status is AppendStatus.OK and back.queue_offset == 10
    assert back.commitlog_offset == ok[-1].commitlog_offset + (await store.get_by_id(ok[-1].msg_id)).size  # type: ignore[union-attr]
    assert store.writable_state is StoreState.WRITABLE
    await store.close()
    store = await MessageStore.open(replace(config))
    got = await store.read("ns%t", 0, 0, max_count=100)
    assert [bytes(x.body) for x in got.messages][-2:] == [b"9", b"back"]
    await store.close()


async def test_consume_queue_write_failure_rolls_back_the_whole_chunk(config: StoreConfig, tmp_path: Path) -> None:
    class CqFull(FileOps):
        full = False

        def pwrite(self, fd: int, data: bytes | bytearray | memoryview, pos: int) -> int:
            if self.full and len(data) % 20 == 0 and len(data) <= 60:  # only the queue entries fail
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().pwrite(fd, data, pos)

    ops = CqFull()
    store = await MessageStore.open(replace(config, file_ops=ops, disk_full_retry_s=0.0))
    await store.append(NewMessage("ns%t", 0, b"one"))
    ops.full = True
    res = await store.append_many([NewMessage("ns%t", 0, b"two"), NewMessage("ns%t", 0, b"three")])
    assert {r.status for r in res} == {AppendStatus.DISK_FULL}
    assert store.queue_bounds("ns%t", 0) == (0, 1)
    ops.full = False
    res = await store.append(NewMessage("ns%t", 0, b"four"))
    assert res.ok and res.queue_offset == 1
    got = await store.read("ns%t", 0, 0, max_count=10)
    assert [bytes(x.body) for x in got.messages] == [b"one", b"four"]
    await store.close()
