"""Append, read back, reopen: the basic path of the store, on real files."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from brokers.node.store import (
    AppendStatus, MessageStore, NewMessage, ReadStatus, StoreConfig, decode_message_id, tag_hash,
)

pytestmark = pytest.mark.asyncio
T = "ns1%orders"


def msg(i: int, **kw: object) -> NewMessage:
    return NewMessage(topic=kw.pop("topic", T), queue_id=kw.pop("queue_id", 0),  # type: ignore[arg-type]
                      body=f"body-{i}".encode() * (i % 7 + 1), **kw)  # type: ignore[arg-type]


async def test_append_then_read_returns_every_field(config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    sent = NewMessage(topic=T, queue_id=3, body=b"hello", tag="TagA", keys=("k1", "k 2"),
                      properties={"color": "red", "__MESSAGE_GROUP": "g1"}, born_timestamp_ms=42,
                      born_host="10.0.0.1:5555", flags=1, reconsume_times=2)
    res = await store.append(sent)
    assert res.status is AppendStatus.OK
    assert res.queue_offset == 0
    assert decode_message_id(res.msg_id).commitlog_offset == res.commitlog_offset
    got = await store.read(T, 3, 0)
    assert got.status is ReadStatus.FOUND and got.next_offset == 1 and got.max_offset == 1
    m = got.messages[0]
    assert (bytes(m.body), m.tag, m.keys, dict(m.properties)) == (
        b"hello", "TagA", ("k1", "k 2"), {"color": "red", "__MESSAGE_GROUP": "g1"})
    assert (m.born_timestamp_ms, m.born_host, m.flags, m.reconsume_times) == (42, "10.0.0.1:5555", 1, 2)
    assert m.store_timestamp_ms == res.store_timestamp_ms == config.clock_ms()
    assert m.msg_id == res.msg_id and m.queue_id == 3 and m.topic == T
    await store.close()


async def test_many_concurrent_appends_get_dense_queue_offsets_across_segment_rolls(
        config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    results = await asyncio.gather(*(store.append(msg(i, queue_id=i % 2)) for i in range(400)))
    assert all(r.status is AppendStatus.OK for r in results)
    for q in (0, 1):
        offsets = sorted(r.queue_offset for i, r in enumerate(results) if i % 2 == q)
        assert offsets == list(range(200))
    assert len(store.commitlog.files) > 3  # 8 KiB segments: the log rolled several times
    got = await store.read(T, 0, 0, max_count=1000, max_bytes=10**9)
    assert [m.queue_offset for m in got.messages] == list(range(200))
    bodies = {r.commitlog_offset: i for i, r in enumerate(results)}
    assert all(bytes(m.body) == msg(bodies[m.commitlog_offset]).body for m in got.messages)
    await store.close()


async def test_reopen_after_clean_close_keeps_everything(config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    first = await store.append_many([msg(i) for i in range(150)])
    await store.close()
    store = await MessageStore.open(config)
    assert store.recovery_report.clean and store.recovery_report.records_replayed == 0
    assert store.queue_bounds(T, 0) == (0, 150)
    more = await store.append(msg(150))
    assert more.queue_offset == 150 and more.commitlog_offset > first[-1].commitlog_offset
    got = await store.read(T, 0, 140, max_count=100)
    assert [bytes(m.body) for m in got.messages] == [msg(i).body for i in range(140, 151)]
    await store.close()


async def test_read_statuses_at_the_edges(config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    await store.append_many([msg(i) for i in range(5)])
    assert (await store.read(T, 0, 5)).status is ReadStatus.NO_MESSAGE_YET
    over = await store.read(T, 0, 9)
    assert over.status is ReadStatus.OFFSET_OVERFLOW and over.next_offset == 5
    assert (await store.read(T, 7, 0)).status is ReadStatus.NO_SUCH_QUEUE
    assert (await store.read("ns1%other", 0, 0)).status is ReadStatus.NO_SUCH_QUEUE
    assert store.queues(T) == [0] and store.queue_bounds(T, 9) == (0, 0)
    await store.close()


async def test_max_bytes_and_max_count_bound_a_read(config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    res = await store.append_many([NewMessage(T, 0, b"x" * 100) for _ in range(20)])
    size = res[1].commitlog_offset - res[0].commitlog_offset
    got = await store.read(T, 0, 0, max_count=10, max_bytes=size * 3 + 1)
    assert len(got.messages) == 3 and got.next_offset == 3
    one = await store.read(T, 0, 0, max_count=10, max_bytes=1)
    assert len(one.messages) == 1  # a single message larger than max_bytes is still served
    assert len((await store.read(T, 0, 0, max_count=4)).messages) == 4
    await store.close()


async def test_tag_filter_skips_entries_without_touching_them(config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    await store.append_many([msg(i, tag="A" if i % 3 == 0 else "B") for i in range(30)])
    want = tag_hash("A")
    got = await store.read(T, 0, 0, max_count=100, tag_filter=lambda h: h == want)
    assert [m.queue_offset for m in got.messages] == list(range(0, 30, 3))
    assert all(m.tag == "A" for m in got.messages)
    assert got.next_offset == 30  # the scanned B entries after the last A are skipped too
    none = await store.read(T, 0, 28, tag_filter=lambda h: h == want)
    assert none.status is ReadStatus.FOUND and none.messages == [] and none.next_offset == 30
    await store.close()


async def test_lookup_by_id_offset_and_key(config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    res = await store.append_many([msg(i, keys=(f"order-{i % 5}",)) for i in range(50)])
    m = await store.get_by_id(res[17].msg_id)
    assert m is not None and m.queue_offset == 17 and bytes(m.body) == msg(17).body
    assert await store.get_by_id("not-an-id") is None
    assert await store.get_by_id(res[17].msg_id.replace("00000000", "00000009", 1)) is None
    assert await store.get_by_commitlog_offset(res[17].commitlog_offset + 1) is None
    # The key index commits on its own thread, but a lookup sees every append before it.
    found = await store.find_by_key(T, "order-3", limit=100)
    assert sorted(x.queue_offset for x in found) == list(range(3, 50, 5))
    assert await store.find_by_key("ns1%other", "order-3") == []
    await store.close()
    store = await MessageStore.open(config)
    assert len(await store.find_by_key(T, "order-3", limit=3)) == 3
    await store.close()


async def test_offset_for_time_binary_searches_store_time(config: StoreConfig, clock) -> None:  # type: ignore[no-untyped-def]
    store = await MessageStore.open(config)
    start = clock.now_ms
    for i in range(40):
        await store.append(msg(i))
        clock.advance(1000)
    assert await store.offset_for_time(T, 0, start) == 0
    assert await store.offset_for_time(T, 0, start + 10_500) == 11
    assert await store.offset_for_time(T, 0, start + 39_000) == 39
    assert await store.offset_for_time(T, 0, start + 99_000) == 40
    assert await store.offset_for_time("ns1%none", 0, start) == 0
    await store.close()


async def test_async_durability_mode_works_the_same(config: StoreConfig) -> None:
    store = await MessageStore.open(replace(config, durability="async", flush_interval_s=0.01))
    res = await asyncio.gather(*(store.append(msg(i)) for i in range(100)))
    assert [r.queue_offset for r in sorted(res, key=lambda r: r.commitlog_offset)] == list(range(100))
    await store.close()
    store = await MessageStore.open(replace(config, durability="async"))
    assert store.queue_bounds(T, 0) == (0, 100)
    await store.close()


async def test_reopen_keeps_the_directory_layout_whatever_the_config_says(config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    await store.append_many([msg(i) for i in range(100)])  # many 32-entry queue segments
    await store.close()
    store = await MessageStore.open(replace(config, segment_bytes=1 << 20, cq_segment_entries=1000))
    assert (store.config.segment_bytes, store.config.cq_segment_entries) == (8 * 1024, 32)
    got = await store.read(T, 0, 0, max_count=1000, max_bytes=1 << 30)
    assert [m.queue_offset for m in got.messages] == list(range(100))
    await store.close()
