"""The official Python SDK against a real node: more receivers than queues drain a backlog
without long-poll stalls, and re-appended copies (delay, transaction commit) are received with
the message id the producer's send returned."""

from __future__ import annotations

import threading
import time

import pytest
from rocketmq import (
    FilterExpression,
    Message,
    Producer,
    SimpleConsumer,
    TransactionChecker,
    TransactionResolution,
)

from ..conftest import ALL_ACCESS, NodeHandle

pytestmark = pytest.mark.slow


def _msg(topic: str, body: bytes) -> Message:
    m = Message()
    m.topic = topic
    m.body = body
    return m


class _Commit(TransactionChecker):
    def check(self, message: Message) -> TransactionResolution:
        return TransactionResolution.COMMIT


def _drain(consumer: SimpleConsumer, want: int, timeout: float = 20) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        batch = consumer.receive(32, 15)
        got.extend(batch)
        for m in batch:
            consumer.ack(m)
    return got


def test_eight_simple_consumers_drain_a_four_queue_backlog(node: NodeHandle) -> None:
    cfg = node.client_config(*ALL_ACCESS)
    producer = Producer(cfg, ("orders",))
    producer.startup()
    total = 600
    try:
        for i in range(total):
            producer.send(_msg("orders", b"m%d" % i))
    finally:
        producer.shutdown()
    consumers = [SimpleConsumer(cfg, "g1", {"orders": FilterExpression()}, await_duration=20)
                 for _ in range(8)]
    for c in consumers:
        c.startup()
    lock = threading.Lock()
    seen: set[bytes] = set()
    stalls: list[float] = []  # receives that came back empty while a backlog was waiting
    errors: list[BaseException] = []

    def loop(c: SimpleConsumer) -> None:
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                with lock:
                    left = total - len(seen)
                if left == 0:
                    return
                t0 = time.monotonic()
                batch = c.receive(32, 30)
                if not batch and left > 8 * 32:  # more than all receivers together hold
                    stalls.append(time.monotonic() - t0)
                for m in batch:
                    c.ack(m)
                with lock:
                    seen.update(m.body for m in batch)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(c,)) for c in consumers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for c in consumers:
            c.shutdown()
    assert not errors, errors
    assert len(seen) == total
    assert stalls == [], stalls


def test_delayed_and_transactional_messages_keep_the_sent_message_id(node: NodeHandle) -> None:
    cfg = node.client_config(*ALL_ACCESS)
    producer = Producer(cfg, ("delayed", "txn"), checker=_Commit())
    producer.startup()
    try:
        delayed = _msg("delayed", b"later")
        delayed.delivery_timestamp = int(time.time()) + 2
        sent_delayed = producer.send(delayed)
        tx = producer.begin_transaction()
        sent_txn = producer.send(_msg("txn", b"committed"), tx)
        tx.commit()
    finally:
        producer.shutdown()
    dc = SimpleConsumer(cfg, "g1", {"delayed": FilterExpression()}, await_duration=3)
    tc = SimpleConsumer(cfg, "g1", {"txn": FilterExpression()}, await_duration=3)
    dc.startup()
    tc.startup()
    try:
        (got_txn,) = _drain(tc, 1)
        assert got_txn.body == b"committed"
        assert got_txn.message_id == sent_txn.message_id
        (got_delayed,) = _drain(dc, 1)
        assert got_delayed.body == b"later"
        assert got_delayed.message_id == sent_delayed.message_id
    finally:
        dc.shutdown()
        tc.shutdown()
