"""A far-future delay message or an open transaction must not hold the whole log: when retention
is held back by their held copies, the engine moves those copies to the end of the log, the
storage cap holds again, and the messages still arrive later with the ids their producers got."""

from __future__ import annotations

from pathlib import Path

from brokers.node.delivery import (
    ConsumerGroup,
    DeliveryConfig,
    DeliveryEngine,
    EndTransactionStatus,
    MessageType,
    RecallStatus,
)
from brokers.node.store import AppendStatus, MessageStore, NewMessage, StoreConfig
from brokers.node.store.model import PROP_DELIVERY_TIME_MS, PROP_ORIGIN_MSG_ID

from .conftest import FakeClock

TOPIC = "ns1%events"
FILL = "ns1%filler"
G = ConsumerGroup("ns1", "g")
HOUR_MS = 3600 * 1000
SEGMENT = 8 * 1024


async def _open(root: Path, clock: FakeClock) -> tuple[MessageStore, DeliveryEngine]:
    store = await MessageStore.open(StoreConfig(
        root=root / "store", segment_bytes=SEGMENT, cq_segment_entries=32, durability="async",
        retention_hours=1000.0, storage_cap_bytes=6 * SEGMENT,
        clock_ms=lambda: int(clock() * 1000)))
    engine = DeliveryEngine(store, state_path=root / "delivery.sqlite3", clock=clock,
                            config=DeliveryConfig(transaction_check_after_ms=100 * HOUR_MS))
    await engine.start(background=False)
    return store, engine


async def _fill_until_refused(store: MessageStore) -> int:
    """Append 700-byte messages until the cap refuses them (retention run after each batch)."""
    appended = 0
    for _ in range(200):
        res = await store.append_many([NewMessage(FILL, 0, b"." * 700) for _ in range(5)])
        appended += sum(r.ok for r in res)
        await store.enforce_retention()
        if any(r.status is AppendStatus.STORAGE_CAP_EXCEEDED for r in res):
            return appended
    raise AssertionError("the storage cap never refused an append")


async def _receive(engine: DeliveryEngine) -> list:
    return await engine.receive(group=G, topic=TOPIC, client_id="c", max_messages=32,
                                invisible_ms=30_000)


async def test_held_copies_move_so_retention_and_the_cap_keep_working(tmp_path: Path) -> None:
    clock = FakeClock()
    store, e = await _open(tmp_path, clock)
    try:
        now = int(clock() * 1000)
        timer = await e.put(NewMessage(TOPIC, 0, b"in ten hours", properties={
            PROP_DELIVERY_TIME_MS: str(now + 10 * HOUR_MS)}), message_type=MessageType.DELAY)
        recallable = await e.put(NewMessage(TOPIC, 0, b"recall me", properties={
            PROP_DELIVERY_TIME_MS: str(now + 10 * HOUR_MS)}), message_type=MessageType.DELAY)
        half = await e.put(NewMessage(TOPIC, 0, b"open transaction"),
                           message_type=MessageType.TRANSACTION, transaction_id="t1")
        # Without moving anything, the oldest segment is pinned and the cap refuses appends.
        await _fill_until_refused(store)
        assert store.retention_blocked_at() == timer.append.commitlog_offset
        assert (await store.append(NewMessage(FILL, 0, b"x"))).status \
            is AppendStatus.STORAGE_CAP_EXCEEDED

        assert await e.relocate_held() == 3
        report = await store.enforce_retention()
        assert report.segments_deleted > 0 and not report.cap_exceeded
        assert store.commitlog.min_offset > half.append.commitlog_offset  # the old copies: gone
        assert store.retention_blocked_at() is None
        assert (await store.append(NewMessage(FILL, 0, b"x"))).ok
        assert await e.relocate_held() == 0  # nothing is in the way any more

        # The moved rows are durable, and the messages keep the ids their producers got.
        await e.stop()
        await store.close()
        store, e = await _open(tmp_path, clock)
        assert await e.recall(TOPIC, recallable.recall_handle) \
            == (RecallStatus.RECALLED, recallable.append.msg_id)
        assert await e.end_transaction(topic=TOPIC, transaction_id="t1",
                                       commit=True) is EndTransactionStatus.COMMITTED
        (committed,) = await _receive(e)
        assert bytes(committed.message.body) == b"open transaction"
        assert committed.message.properties[PROP_ORIGIN_MSG_ID] == half.append.msg_id
        await e.ack(group=G, topic=TOPIC, receipt_handle=committed.receipt_handle)

        clock.advance(10 * HOUR_MS)
        await e.tick()
        (delayed,) = await _receive(e)
        assert bytes(delayed.message.body) == b"in ten hours"
        assert delayed.message.properties[PROP_ORIGIN_MSG_ID] == timer.append.msg_id
        await e.ack(group=G, topic=TOPIC, receipt_handle=delayed.receipt_handle)
        assert await _receive(e) == []  # the recalled one never arrives
    finally:
        await e.stop()
        await store.close()
