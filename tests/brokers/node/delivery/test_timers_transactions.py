"""Delay timers and transactional half messages: visibility, durability, orphan checks."""

from __future__ import annotations

from brokers.node.delivery import (
    ConsumerGroup,
    EndTransactionStatus,
    MessageType,
    TransactionCheck,
)
from brokers.node.store import NewMessage
from brokers.node.store.model import PROP_DELIVERY_TIME_MS, PROP_ORIGIN_TOPIC

TOPIC = "ns1%events"
G = ConsumerGroup("ns1", "g")


async def recv(engine):
    return await engine.receive(group=G, topic=TOPIC, client_id="c", max_messages=32,
                                invisible_ms=10_000)


async def test_delay_message_appears_when_due_and_survives_restart(harness) -> None:
    e = harness.engine
    due = int(harness.clock() * 1000) + 10_000
    res = await e.put(NewMessage(topic=TOPIC, queue_id=2, body=b"later",
                                 properties={PROP_DELIVERY_TIME_MS: str(due), "k": "v"}),
                      message_type=MessageType.DELAY)
    assert res.ok and not res.visible
    await e.put(NewMessage(topic=TOPIC, queue_id=0, body=b"now"))
    (now,) = await recv(e)
    assert bytes(now.message.body) == b"now"
    await e.ack(group=G, topic=TOPIC, receipt_handle=now.receipt_handle)
    e = await harness.restart()
    await harness.advance(9_000)
    assert await recv(e) == []
    await harness.advance(1_000)
    (d,) = await recv(e)
    assert bytes(d.message.body) == b"later" and d.message.queue_id == 2
    assert d.message.topic == TOPIC
    assert d.message.properties["k"] == "v"
    assert d.message.properties[PROP_DELIVERY_TIME_MS] == str(due)
    assert PROP_ORIGIN_TOPIC not in d.message.properties


async def test_past_delivery_time_is_delivered_at_once(harness) -> None:
    e = harness.engine
    past = int(harness.clock() * 1000) - 5
    res = await e.put(NewMessage(topic=TOPIC, queue_id=0, body=b"x",
                                 properties={PROP_DELIVERY_TIME_MS: str(past)}),
                      message_type=MessageType.DELAY)
    assert res.visible
    assert len(await recv(e)) == 1


async def test_commit_makes_half_visible_rollback_drops_it(harness) -> None:
    e = harness.engine
    a = await e.put(NewMessage(topic=TOPIC, queue_id=0, body=b"a"),
                    message_type=MessageType.TRANSACTION, transaction_id="t-a")
    b = await e.put(NewMessage(topic=TOPIC, queue_id=0, body=b"b"),
                    message_type=MessageType.TRANSACTION)
    assert a.transaction_id == "t-a" and b.transaction_id
    assert await recv(e) == []
    assert await e.end_transaction(topic=TOPIC, transaction_id="t-a", commit=True) \
        is EndTransactionStatus.COMMITTED
    assert await e.end_transaction(topic=TOPIC, transaction_id=b.transaction_id,
                                   commit=False) is EndTransactionStatus.ROLLED_BACK
    assert await e.end_transaction(topic=TOPIC, transaction_id="t-a", commit=True) \
        is EndTransactionStatus.ALREADY_RESOLVED
    assert await e.end_transaction(topic=TOPIC, transaction_id="nope", commit=True) \
        is EndTransactionStatus.UNKNOWN_TRANSACTION
    assert [bytes(d.message.body) for d in await recv(e)] == [b"a"]


async def test_orphan_is_checked_with_backoff_then_dropped(harness) -> None:
    e = harness.engine
    checks: list[TransactionCheck] = []

    async def checker(check: TransactionCheck) -> bool:
        checks.append(check)
        return True

    e.set_transaction_checker(checker)
    await e.put(NewMessage(topic=TOPIC, queue_id=1, body=b"orphan"),
                message_type=MessageType.TRANSACTION, transaction_id="t1",
                producer_group="pg", producer_client_id="prod-1")
    e = await harness.restart()  # the half message and its check schedule are durable
    e.set_transaction_checker(checker)
    await harness.advance(1_000)
    assert checks == []
    await harness.advance(1_500)
    assert len(checks) == 1
    c = checks[0]
    assert (c.transaction_id, c.topic, c.producer_client_id, c.check_number) == \
        ("t1", TOPIC, "prod-1", 1)
    assert bytes(c.message.body) == b"orphan" and c.message.topic == TOPIC
    await harness.advance(1_100)  # second check after 1 s
    await harness.advance(2_100)  # third after 2 s
    assert [x.check_number for x in checks] == [1, 2, 3]
    await harness.advance(4_100)  # max checks reached: rolled back
    assert len(checks) == 3
    assert await e.end_transaction(topic=TOPIC, transaction_id="t1", commit=True) \
        is EndTransactionStatus.ALREADY_RESOLVED
    assert await recv(e) == []


async def test_check_answer_commit_delivers(harness) -> None:
    e = harness.engine

    async def checker(check: TransactionCheck) -> bool:
        await e.end_transaction(topic=check.topic, transaction_id=check.transaction_id,
                                commit=True, from_check=True)
        return True

    e.set_transaction_checker(checker)
    await e.put(NewMessage(topic=TOPIC, queue_id=0, body=b"late-commit"),
                message_type=MessageType.TRANSACTION, transaction_id="t2")
    await harness.advance(2_500)
    got = await e.receive(group=G, topic=TOPIC, client_id="c", max_messages=32,
                          invisible_ms=10_000, long_poll_ms=3000)  # the commit wakes it
    assert [bytes(d.message.body) for d in got] == [b"late-commit"]
