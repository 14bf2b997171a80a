"""Retention by age and by storage cap, with an injected clock, and pins that stop it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from brokers.node.store import AppendStatus, MessageStore, NewMessage, ReadStatus, StoreConfig, StoreState
from brokers.node.store.state import InflightBatch

pytestmark = pytest.mark.asyncio
T = "ns%logs"
HOUR_MS = 3600 * 1000


def m(i: int, q: int = 0) -> NewMessage:
    return NewMessage(T, q, b"%05d" % i + b"." * 500)


async def fill(store: MessageStore, n: int, start: int = 0) -> list[int]:
    res = await store.append_many([m(i, i % 2) for i in range(start, start + n)])
    assert all(r.status is AppendStatus.OK for r in res)
    return [r.commitlog_offset for r in res]


async def test_age_deletes_old_segments_and_advances_queue_minimum(config: StoreConfig, clock) -> None:  # type: ignore[no-untyped-def]
    store = await MessageStore.open(replace(config, retention_hours=1.0))
    await fill(store, 60)  # ~8 segments of 8 KiB, all stored "now"
    old_segments = len(store.commitlog.files)
    clock.advance(2 * HOUR_MS)
    await fill(store, 20, start=60)  # new data, two hours later
    report = await store.enforce_retention()
    assert report.segments_deleted >= old_segments - 1
    assert report.new_min_offset == store.commitlog.min_offset > 0
    lo, hi = store.queue_bounds(T, 0)
    assert lo > 0 and hi == 40
    assert (await store.read(T, 0, 0)).status is ReadStatus.OFFSET_TOO_SMALL
    got = await store.read(T, 0, lo, max_count=100)
    assert got.status is ReadStatus.FOUND and got.messages[0].queue_offset == lo
    assert all(msg.store_timestamp_ms == clock.now_ms for msg in got.messages[-10:])
    # Nothing is young enough to expire now: a second run deletes nothing.
    assert (await store.enforce_retention()).segments_deleted == 0
    # The advanced minimum survives a restart.
    await store.close()
    store = await MessageStore.open(replace(config, retention_hours=1.0))
    assert store.queue_bounds(T, 0) == (lo, 40)
    await store.close()


async def test_storage_cap_deletes_oldest_until_under_cap_and_drops_whole_cq_segments(
        config: StoreConfig) -> None:
    cfg = replace(config, storage_cap_bytes=4 * config.segment_bytes, cq_segment_entries=16)
    store = await MessageStore.open(cfg)
    await fill(store, 200)
    before_cq = len(store.cqs.get(T, 0).files)  # type: ignore[union-attr]
    report = await store.enforce_retention()
    assert report.segments_deleted > 0 and not report.cap_exceeded
    assert store.commitlog.files.total_bytes() <= cfg.storage_cap_bytes  # type: ignore[operator]
    assert report.queue_segments_deleted > 0
    assert len(store.cqs.get(T, 0).files) < before_cq  # type: ignore[union-attr]
    lo, hi = store.queue_bounds(T, 0)
    got = await store.read(T, 0, lo, max_count=1000, max_bytes=1 << 30)
    assert [x.queue_offset for x in got.messages] == list(range(lo, hi))
    assert store.writable_state is StoreState.WRITABLE
    await store.close()


async def test_pinned_message_stops_deletion_and_cap_refuses_writes(config: StoreConfig, clock) -> None:  # type: ignore[no-untyped-def]
    cfg = replace(config, storage_cap_bytes=3 * config.segment_bytes, retention_hours=1.0)
    store = await MessageStore.open(cfg)
    offsets = await fill(store, 40)
    pinned = offsets[20]
    await store.state.schedule_timer(pinned, clock.now_ms + 10 * HOUR_MS)
    await fill(store, 40, start=40)
    clock.advance(5 * HOUR_MS)
    await fill(store, 2, start=80)
    report = await store.enforce_retention()
    assert report.blocked_by_pin == pinned and report.cap_exceeded
    assert store.commitlog.min_offset <= pinned
    assert (await store.get_by_commitlog_offset(pinned)) is not None
    refused = await store.append(m(999))
    assert refused.status is AppendStatus.STORAGE_CAP_EXCEEDED and "pinned" in refused.detail
    assert store.writable_state is StoreState.STORAGE_CAP_EXCEEDED
    await store.state.remove_timer(pinned)
    report = await store.enforce_retention()
    assert not report.cap_exceeded and store.commitlog.min_offset > pinned
    assert (await store.append(m(1000))).status is AppendStatus.OK
    await store.close()


async def test_inflight_and_half_messages_pin_too(config: StoreConfig, clock) -> None:  # type: ignore[no-untyped-def]
    store = await MessageStore.open(replace(config, retention_hours=1.0))
    offsets = await fill(store, 60)
    await store.state.put_inflight(InflightBatch("b1", "g", T, 0, (10, 11), (offsets[10], offsets[11]),
                                                 clock.now_ms + 1000))
    await store.state.put_half("txn-1", offsets[30], "pg", T)
    assert store.pins() == offsets[10]
    await store.state.ack("b1", 0)
    assert store.pins() == offsets[11]
    await store.state.ack("b1", 1)
    assert store.pins() == offsets[30]
    extra: list[int | None] = [offsets[5]]
    store.add_pin_source(lambda: extra[0])  # e.g. the delivery engine's own pending messages
    assert store.pins() == offsets[5]
    clock.advance(2 * HOUR_MS)
    await fill(store, 5, start=60)
    await store.enforce_retention()
    assert (await store.get_by_commitlog_offset(offsets[5])) is not None
    extra[0] = None
    await store.enforce_retention()
    assert store.commitlog.min_offset <= offsets[30] < store.commitlog.min_offset + config.segment_bytes
    await store.close()
