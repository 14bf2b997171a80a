"""The official Python SDK against a real node process: consumption semantics end to end."""

from __future__ import annotations

import time

import pytest
from rocketmq import FilterExpression, Message, Producer, SimpleConsumer
from rocketmq.grpc_protocol import FilterType

from ..conftest import ALL_ACCESS, NodeHandle

pytestmark = pytest.mark.slow


def _message(topic: str, body: bytes, tag: str = "", **props: str) -> Message:
    m = Message()
    m.topic = topic
    m.body = body
    if tag:
        m.tag = tag
    for k, v in props.items():
        m.add_property(k, v)
    return m


def _drain(consumer: SimpleConsumer, want: int, timeout: float = 15) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got.extend(consumer.receive(32, 15))
    return got


def test_simple_consumer_receive_ack_nack_and_tag_filter(node: NodeHandle) -> None:
    cfg = node.client_config(*ALL_ACCESS)
    producer = Producer(cfg, ("orders",))
    producer.startup()
    consumer = SimpleConsumer(cfg, "g1", {"orders": FilterExpression("a || c")}, await_duration=3)
    consumer.startup()
    try:
        for i, tag in enumerate(["a", "b", "c", "a"]):
            producer.send(_message("orders", b"m%d" % i, tag=tag))
        got = _drain(consumer, 3)
        assert sorted(m.body for m in got) == [b"m0", b"m2", b"m3"]
        assert all(m.delivery_attempt == 1 for m in got)
        nacked = next(m for m in got if m.body == b"m2")
        for m in got:
            if m is not nacked:
                consumer.ack(m)
        consumer.change_invisible_duration(nacked, 1)
        again = _drain(consumer, 1)
        assert [m.body for m in again] == [b"m2"]
        assert again[0].delivery_attempt == 2
        consumer.ack(again[0])
        assert consumer.receive(32, 15) == []
    finally:
        consumer.shutdown()
        producer.shutdown()


def test_sql_filter_delay_and_transaction(node: NodeHandle) -> None:
    cfg = node.client_config(*ALL_ACCESS)
    producer = Producer(cfg, ("orders", "delayed"))
    producer.startup()
    sql = SimpleConsumer(cfg, "g1", {"orders": FilterExpression("n > 5 AND region = 'eu'",
                                                                FilterType.SQL)},
                         await_duration=3)
    sql.startup()
    try:
        for n, region in [(1, "eu"), (7, "us"), (9, "eu")]:
            producer.send(_message("orders", b"n%d" % n, n=str(n), region=region))
        got = _drain(sql, 1)
        assert [m.body for m in got] == [b"n9"]
        sql.ack(got[0])

        sent_at = time.time()
        delayed = _message("delayed", b"later")
        delayed.delivery_timestamp = int(sent_at) + 3
        producer.send(delayed)
    finally:
        sql.shutdown()
    dc = SimpleConsumer(cfg, "g1", {"delayed": FilterExpression()}, await_duration=3)
    dc.startup()
    try:
        got = _drain(dc, 1, timeout=20)
        assert [m.body for m in got] == [b"later"]
        assert time.time() >= int(sent_at) + 3 - 0.5  # not before its time (1 s precision)
        dc.ack(got[0])
    finally:
        dc.shutdown()
        producer.shutdown()
