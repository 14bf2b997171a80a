"""Batch rows: one received and acked between two flushes is never written; one written and
then finished is deleted. Either way a restart neither redelivers nor loses anything."""

from __future__ import annotations

import sqlite3

from brokers.node.delivery import ConsumerGroup
from brokers.node.store import NewMessage

TOPIC = "ns1%t"
G = ConsumerGroup("ns1", "g")


async def recv(e):
    return await e.receive(group=G, topic=TOPIC, client_id="c", max_messages=32,
                           invisible_ms=5_000)


def batch_rows(harness) -> int:
    with sqlite3.connect(harness.root / "delivery.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM batch").fetchone()[0]


async def test_batch_rows_skip_short_lived_batches_and_survive_restart(harness) -> None:
    e = harness.engine
    for i in range(6):
        assert (await e.put(NewMessage(topic=TOPIC, queue_id=0, body=b"m%d" % i))).ok
    ds = await e.receive(group=G, topic=TOPIC, client_id="c", max_messages=2,
                         invisible_ms=5_000)
    for d in ds:  # received and acked within one flush period: never written
        await e.ack(group=G, topic=TOPIC, receipt_handle=d.receipt_handle)
    await e.flush()
    assert batch_rows(harness) == 0
    ds = await e.receive(group=G, topic=TOPIC, client_id="c", max_messages=2,
                         invisible_ms=5_000)
    await e.flush()
    assert batch_rows(harness) == 1  # in flight across a flush: written
    for d in ds:
        await e.ack(group=G, topic=TOPIC, receipt_handle=d.receipt_handle)
    await e.flush()
    assert batch_rows(harness) == 0  # ... and deleted once finished
    held = await e.receive(group=G, topic=TOPIC, client_id="c", max_messages=1,
                           invisible_ms=5_000)
    e = await harness.restart()
    assert batch_rows(harness) == 1
    rest = await recv(e)
    assert [bytes(d.message.body) for d in rest] == [b"m5"]  # m4 still invisible, m0-3 acked
    assert [bytes(d.message.body) for d in held] == [b"m4"]
    await e.ack(group=G, topic=TOPIC, receipt_handle=rest[0].receipt_handle)
    await harness.advance(6_000)
    (again,) = await recv(e)
    assert bytes(again.message.body) == b"m4" and again.delivery_attempt == 2
