"""Retention over a real store with tiny segments and a fake clock never deletes a message the
delivery engine still needs: a pending delay timer, an unresolved transaction half, an in-flight
or waiting-for-redelivery entry. The engine registers itself as a pin source at start."""

from __future__ import annotations

from pathlib import Path

from brokers.node.delivery import (
    AckStatus,
    ConsumerGroup,
    DeliveryConfig,
    DeliveryEngine,
    EndTransactionStatus,
    MessageType,
)
from brokers.node.store import MessageStore, NewMessage, StoreConfig
from brokers.node.store.model import PROP_DELIVERY_TIME_MS

from .conftest import FakeClock

TOPIC = "ns1%events"
FILL = "ns1%filler"
G = ConsumerGroup("ns1", "g")
HOUR_MS = 3600 * 1000


async def _open(root: Path, clock: FakeClock) -> tuple[MessageStore, DeliveryEngine]:
    store = await MessageStore.open(StoreConfig(
        root=root / "store", segment_bytes=8 * 1024, cq_segment_entries=32, durability="async",
        retention_hours=1.0, clock_ms=lambda: int(clock() * 1000)))
    engine = DeliveryEngine(store, state_path=root / "delivery.sqlite3", clock=clock,
                            config=DeliveryConfig(transaction_check_after_ms=10 * HOUR_MS))
    await engine.start(background=False)
    return store, engine


async def _fill(store: MessageStore, n: int) -> None:
    res = await store.append_many([NewMessage(FILL, 0, b"." * 700) for _ in range(n)])
    assert all(r.ok for r in res)


async def _recv(engine: DeliveryEngine) -> list:
    return await engine.receive(group=G, topic=TOPIC, client_id="c", max_messages=32,
                                invisible_ms=30_000)


async def test_pending_timer_half_and_inflight_pin_retention(tmp_path: Path) -> None:
    clock = FakeClock()
    store, e = await _open(tmp_path, clock)
    try:
        now = int(clock() * 1000)
        # An in-flight (received, unacked) message first, so its pin is the lowest.
        await e.put(NewMessage(TOPIC, 0, b"inflight"))
        (d1,) = await _recv(e)
        inflight_clo = d1.message.commitlog_offset
        await _fill(store, 30)
        half = await e.put(NewMessage(TOPIC, 0, b"half"), message_type=MessageType.TRANSACTION,
                           transaction_id="t1")
        await _fill(store, 30)
        timer = await e.put(NewMessage(TOPIC, 1, b"delayed",
                                       properties={PROP_DELIVERY_TIME_MS: str(now + 10 * HOUR_MS)}),
                            message_type=MessageType.DELAY)
        await _fill(store, 30)
        assert store.pins() == e.pin_offset() == inflight_clo

        # Two hours later everything above is past retention; the in-flight entry has expired
        # (ready for redelivery), which still pins it.
        clock.advance(2 * HOUR_MS)
        await e.tick()
        await _fill(store, 30)
        report = await store.enforce_retention()
        assert report.blocked_by_pin == inflight_clo
        assert store.commitlog.min_offset <= inflight_clo
        (again,) = await _recv(e)
        assert bytes(again.message.body) == b"inflight" and again.delivery_attempt == 2
        assert await e.ack(group=G, topic=TOPIC, receipt_handle=again.receipt_handle) is AckStatus.OK

        # Acked: the pin moves to the half message; retention now deletes up to it.
        assert e.pin_offset() == half.append.commitlog_offset
        report = await store.enforce_retention()
        assert report.segments_deleted > 0
        assert report.blocked_by_pin == half.append.commitlog_offset
        assert store.commitlog.min_offset <= half.append.commitlog_offset
        assert await e.end_transaction(topic=TOPIC, transaction_id="t1",
                                       commit=True) is EndTransactionStatus.COMMITTED
        committed = await _recv(e)
        assert [bytes(x.message.body) for x in committed] == [b"half"]
        await e.ack(group=G, topic=TOPIC, receipt_handle=committed[0].receipt_handle)

        # Only the timer is left; it survives retention and a restart, and fires when due.
        assert e.pin_offset() == timer.append.commitlog_offset
        await store.enforce_retention()
        assert store.commitlog.min_offset <= timer.append.commitlog_offset
        await e.stop()
        await store.close()
        store, e = await _open(tmp_path, clock)
        assert e.pin_offset() == timer.append.commitlog_offset
        assert (await store.enforce_retention()).blocked_by_pin == timer.append.commitlog_offset
        clock.advance(9 * HOUR_MS)
        await e.tick()
        delayed = await _recv(e)
        assert [bytes(x.message.body) for x in delayed] == [b"delayed"]
        await e.ack(group=G, topic=TOPIC, receipt_handle=delayed[0].receipt_handle)

        # Nothing pending: no pin, retention proceeds past every old segment.
        assert e.pin_offset() is None
        await _fill(store, 30)
        report = await store.enforce_retention()
        assert report.blocked_by_pin is None and report.segments_deleted > 0
        assert store.commitlog.min_offset > timer.append.commitlog_offset
    finally:
        await e.stop()
        await store.close()
