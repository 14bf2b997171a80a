"""Copies the engine re-appends (due delay timers, committed halves, DLQ copies) carry the id the
producer got back in ``__ORIGIN_MSG_ID``, and the gRPC codec reports it as the message id."""

from __future__ import annotations

from brokers.node.delivery import ConsumerGroup, MessageType, dlq_topic
from brokers.node.grpc.codec import to_delivered_message
from brokers.node.store import NewMessage
from brokers.node.store.model import PROP_DELIVERY_TIME_MS, PROP_ORIGIN_MSG_ID

TOPIC = "ns1%events"
G = ConsumerGroup("ns1", "g", max_delivery_attempts=1)


async def recv(engine, topic=TOPIC):
    return await engine.receive(group=G, topic=topic, client_id="c", max_messages=32,
                                invisible_ms=1_000)


def delivered_id(d) -> str:
    return to_delivered_message(d.message, receipt_handle=d.receipt_handle,
                                delivery_attempt=d.delivery_attempt).system_properties.message_id


async def test_delayed_committed_and_dead_lettered_copies_keep_the_sent_id(harness) -> None:
    e = harness.engine
    due = int(harness.clock() * 1000) + 1_000
    delayed = await e.put(NewMessage(topic=TOPIC, queue_id=0, body=b"later",
                                     properties={PROP_DELIVERY_TIME_MS: str(due)}),
                          message_type=MessageType.DELAY)
    half = await e.put(NewMessage(topic=TOPIC, queue_id=1, body=b"txn"),
                       message_type=MessageType.TRANSACTION, transaction_id="t1")
    await e.end_transaction(topic=TOPIC, transaction_id="t1", commit=True)
    await harness.advance(1_000)
    got = {bytes(d.message.body): d for d in await recv(e)}
    sent = {b"later": delayed.append.msg_id, b"txn": half.append.msg_id}
    assert set(got) == set(sent)
    for body, d in got.items():
        assert d.message.msg_id != sent[body]  # a new record ...
        assert d.message.properties[PROP_ORIGIN_MSG_ID] == sent[body]  # ... with the old id
        assert delivered_id(d) == sent[body]
    # Not acked, one attempt allowed: both go to the DLQ, still under the producer's id.
    await harness.advance(1_000)
    dead = await recv(e, dlq_topic("ns1", "g"))
    assert sorted(delivered_id(d) for d in dead) == sorted(sent.values())
