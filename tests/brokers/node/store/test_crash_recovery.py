"""Crash recovery on real processes and real files: SIGKILL mid-write, torn tails, flipped bytes."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from brokers.node.store import AppendStatus, MessageStore, NewMessage, ReadStatus, StoreConfig

pytestmark = pytest.mark.asyncio
REPO = Path(__file__).resolve().parents[4]
WRITER = Path(__file__).with_name("crash_writer.py")
TOPIC = "crash%orders"
KILLS = 20


def run_writer_and_kill(root: Path, seed: int, rng: random.Random) -> list[tuple[str, int, int]]:
    """Start the writer, let it acknowledge for a random while, SIGKILL it; return its acks."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(WRITER), str(root), str(seed)],
                            stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    lines: list[bytes] = []
    want = rng.randrange(1, 400)
    deadline = time.monotonic() + 20
    acked = 0
    while acked < want and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if not line.startswith(b"READY"):
            acked += 1
    time.sleep(rng.random() * 0.03)  # a random moment while writes are in full flow
    proc.send_signal(signal.SIGKILL)
    # Not communicate(timeout=...): it reads the raw fd and would skip what readline() buffered.
    lines.extend(proc.stdout.read().splitlines(keepends=True))
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    acks = []
    for line in lines:
        if not line.endswith(b"\n") or line.startswith(b"READY"):
            continue  # the last line may be cut by the kill: that append counts as unacknowledged
        msg_id, queue_id, crc = line.split()
        assert len(msg_id) == 24, line
        acks.append((msg_id.decode(), int(queue_id), int(crc)))
    return acks


def self_checks(body: bytes) -> bool:
    return zlib.crc32(body[4:]).to_bytes(4, "little") == body[:4]


async def verify(root: Path, acked: dict[str, tuple[int, int]],
                 from_offsets: dict[int, int]) -> dict[int, int]:
    """Reopen after a kill and check ``acked`` by id, and every queue entry from ``from_offsets``
    on (per queue); return the queues' ends, where the next round's check starts."""
    store = await MessageStore.open(StoreConfig(root=root, segment_bytes=64 * 1024,
                                                cq_segment_entries=64))
    report = store.recovery_report
    assert not report.clean
    # Every acknowledged append reads back intact, by id.
    for msg_id, (queue_id, crc) in acked.items():
        m = await store.get_by_id(msg_id)
        assert m is not None, f"acknowledged {msg_id} lost ({report})"
        assert m.queue_id == queue_id and zlib.crc32(m.body) == crc
    # Every visible queue entry points at a whole, valid record; queue offsets are dense.
    ends = {}
    for q in store.queues(TOPIC):
        lo, hi = store.queue_bounds(TOPIC, q)
        offset = max(lo, from_offsets.get(q, lo))
        while offset < hi:
            got = await store.read(TOPIC, q, offset, max_count=500, max_bytes=1 << 30)
            assert got.status is ReadStatus.FOUND, got
            for i, m in enumerate(got.messages):
                assert m.queue_offset == offset + i and self_checks(bytes(m.body))
            offset = got.next_offset
        ends[q] = hi
    await store.close()  # clean close; the next writer run appends after it
    return ends


async def test_sigkill_during_sync_writes_loses_no_acknowledged_append(tmp_path: Path) -> None:
    root = tmp_path / "node"
    rng = random.Random(1234)
    acked: dict[str, tuple[int, int]] = {}
    checked_to: dict[int, int] = {}
    for i in range(KILLS):
        this_run = {msg_id: (q, crc) for msg_id, q, crc in run_writer_and_kill(root, i, rng)}
        acked.update(this_run)
        checked_to = await verify(root, this_run, checked_to)
    assert len(acked) > KILLS * 10
    # Finally: after all those kills and recoveries, everything ever acknowledged is still there.
    (root / "abort").touch()  # verify() expects an unclean stop
    ends = await verify(root, acked, {})
    assert sum(ends.values()) >= len(acked)


def _msg(i: int) -> NewMessage:
    return NewMessage("ns%t", 0, bytes([i % 251]) * (100 + i))


async def test_torn_tail_is_cut_and_reported(config: StoreConfig, tmp_path: Path) -> None:
    store = await MessageStore.open(config)
    results = await store.append_many([_msg(i) for i in range(30)])
    crash_copy = tmp_path / "crashed"
    shutil.copytree(config.root, crash_copy)  # the directory as a kill would leave it
    await store.close()
    last = sorted((crash_copy / "commitlog").iterdir())[-1]
    whole = last.stat().st_size
    with last.open("ab") as f:
        f.write(b"\x00\x01\x00\x00" + b"\xda" * 37)  # half a record: a torn append
    cq_file = sorted((crash_copy / "consumequeue" / "ns%t" / "0").iterdir())[-1]
    with cq_file.open("ab") as f:
        f.write(b"\x07" * 27)  # an entry for the torn record plus a torn entry
    store = await MessageStore.open(StoreConfig(root=crash_copy, segment_bytes=config.segment_bytes,
                                                cq_segment_entries=config.cq_segment_entries))
    rep = store.recovery_report
    assert not rep.clean and rep.bytes_truncated == 41 and rep.truncated_at is not None
    assert "torn tail" in rep.reason
    assert last.stat().st_size == whole
    assert store.queue_bounds("ns%t", 0) == (0, 30)
    last_msg = await store.get_by_id(results[-1].msg_id)
    assert last_msg is not None and bytes(last_msg.body) == _msg(29).body
    after = await store.append(_msg(30))
    assert after.queue_offset == 30
    assert after.commitlog_offset == results[-1].commitlog_offset + last_msg.size  # where the tear was
    await store.close()


async def test_unclean_stop_without_checkpoint_rebuilds_queues_and_keys(config: StoreConfig,
                                                                       tmp_path: Path) -> None:
    store = await MessageStore.open(config)
    await store.append_many([NewMessage("ns%t", i % 3, b"v%d" % i, keys=(f"key{i}",)) for i in range(90)])
    crash_copy = tmp_path / "crashed"
    shutil.copytree(config.root, crash_copy)
    await store.close()
    shutil.rmtree(crash_copy / "consumequeue")
    (crash_copy / "checkpoint").write_bytes(b"garbage")
    store = await MessageStore.open(StoreConfig(root=crash_copy, segment_bytes=config.segment_bytes,
                                                cq_segment_entries=config.cq_segment_entries))
    rep = store.recovery_report
    assert rep.records_replayed == 90 and rep.replay_start == 0 and "full replay" in rep.reason
    assert [store.queue_bounds("ns%t", q) for q in range(3)] == [(0, 30)] * 3
    got = await store.read("ns%t", 1, 0, max_count=100)
    assert [bytes(m.body) for m in got.messages] == [b"v%d" % i for i in range(1, 90, 3)]
    assert [m.queue_offset for m in await store.find_by_key("ns%t", "key43")] == [14]
    await store.close()


async def test_flipped_bytes_give_corrupted_for_that_record_and_serve_the_rest(
        config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    res = await store.append_many([_msg(i) for i in range(60)])
    await store.close()
    victim = res[20]
    seg_bytes = config.segment_bytes
    path = config.root / "commitlog" / f"{victim.commitlog_offset - victim.commitlog_offset % seg_bytes:020d}"
    data = bytearray(path.read_bytes())
    at = victim.commitlog_offset % seg_bytes + 80  # inside the body
    data[at] ^= 0xFF
    data[at + 1] ^= 0x55
    path.write_bytes(bytes(data))
    store = await MessageStore.open(config)
    first = await store.read("ns%t", 0, 15, max_count=10)
    assert first.status is ReadStatus.FOUND
    assert [m.queue_offset for m in first.messages] == [15, 16, 17, 18, 19] and first.next_offset == 20
    bad = await store.read("ns%t", 0, 20)
    assert bad.status is ReadStatus.CORRUPTED and bad.next_offset == 21
    assert "CRC mismatch" in bad.detail
    rest = await store.read("ns%t", 0, 21, max_count=100)
    assert [m.queue_offset for m in rest.messages] == list(range(21, 60))
    assert await store.get_by_id(victim.msg_id) is None
    assert (await store.get_by_id(res[21].msg_id)) is not None
    ok = await store.append(_msg(60))
    assert ok.status is AppendStatus.OK
    await store.close()


async def test_checkpoint_advances_while_running_so_a_crash_replays_little(config: StoreConfig,
                                                                         tmp_path: Path) -> None:
    cfg = replace(config, durability="async", flush_interval_s=0.01, checkpoint_interval_s=0.02)
    store = await MessageStore.open(cfg)
    await store.append_many([_msg(i) for i in range(50)])
    end = store.end_offset
    for _ in range(200):  # the maintenance thread checkpoints every 20 ms
        await asyncio.sleep(0.01)
        if store.maintenance.checkpoints >= 2:
            break
    crash_copy = tmp_path / "crashed"
    shutil.copytree(cfg.root, crash_copy)
    await store.close()
    store = await MessageStore.open(replace(cfg, root=crash_copy))
    rep = store.recovery_report
    assert not rep.clean and rep.checkpoint_offset == end == rep.end_offset
    assert rep.records_replayed == 0 and rep.consume_queue_entries_dropped == 0
    assert store.queue_bounds("ns%t", 0) == (0, 50)
    await store.close()


async def test_damaged_record_followed_by_good_ones_is_skipped_not_cut(config: StoreConfig,
                                                                       tmp_path: Path) -> None:
    store = await MessageStore.open(config)
    res = await store.append_many([_msg(i) for i in range(30)])  # one 8 KiB segment
    crash_copy = tmp_path / "crashed"
    shutil.copytree(config.root, crash_copy)
    await store.close()
    (crash_copy / "checkpoint").unlink()  # replay everything, the damaged record included
    seg = crash_copy / "commitlog" / f"{0:020d}"
    data = bytearray(seg.read_bytes())
    data[res[10].commitlog_offset + 90] ^= 0x40  # a flipped bit in record 10's body
    seg.write_bytes(bytes(data))
    store = await MessageStore.open(replace(config, root=crash_copy))
    rep = store.recovery_report
    assert rep.truncated_at is None and rep.bytes_truncated == 0
    assert f"corrupt record at {res[10].commitlog_offset}" in rep.reason
    assert store.queue_bounds("ns%t", 0) == (0, 30)
    head = await store.read("ns%t", 0, 0, max_count=100)
    assert [m.queue_offset for m in head.messages] == list(range(10)) and head.next_offset == 10
    bad = await store.read("ns%t", 0, 10)
    assert bad.status is ReadStatus.CORRUPTED and bad.next_offset == 11
    tail = await store.read("ns%t", 0, 11, max_count=100)
    assert [bytes(m.body) for m in tail.messages] == [_msg(i).body for i in range(11, 30)]
    await store.close()
    # The hole survives a clean restart without hiding the entries around it.
    store = await MessageStore.open(replace(config, root=crash_copy))
    assert store.queue_bounds("ns%t", 0) == (0, 30)
    assert len((await store.read("ns%t", 0, 0, max_count=100)).messages) == 10
    await store.close()
