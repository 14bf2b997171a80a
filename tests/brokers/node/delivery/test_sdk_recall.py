"""Recalling delay messages with the official Python SDK (``Producer.recall_message``)."""

from __future__ import annotations

import time

import pytest
from rocketmq import FilterExpression, Message, Producer, SimpleConsumer

from ..conftest import ALL_ACCESS, OTHER_TENANT, NodeHandle

pytestmark = pytest.mark.slow


def _delayed(body: bytes, at: float, topic: str = "delayed") -> Message:
    m = Message()
    m.topic = topic
    m.body = body
    m.delivery_timestamp = int(at)
    return m


def test_a_recalled_delay_message_is_never_delivered_even_after_a_restart(
        node: NodeHandle) -> None:
    cfg = node.client_config(*ALL_ACCESS)
    producer = Producer(cfg, ("delayed", "orders"))
    producer.startup()
    try:
        due = time.time() + 5
        keep = producer.send(_delayed(b"keep", due))
        drop = producer.send(_delayed(b"drop", due))
        plain = Message()
        plain.topic, plain.body = "orders", b"now"
        assert producer.send(plain).recall_handle is None  # only delay messages have one
        assert keep.recall_handle and drop.recall_handle and keep.recall_handle != drop.recall_handle

        assert producer.recall_message("delayed", drop.recall_handle) == drop.message_id
        with pytest.raises(Exception, match="delivered or recalled already"):
            producer.recall_message("delayed", drop.recall_handle)  # once only
        with pytest.raises(Exception, match="not one this service issued"):
            producer.recall_message("delayed", "bm90LWEtaGFuZGxl")
        with pytest.raises(Exception, match="only delay messages can be recalled"):
            producer.recall_message("orders", keep.recall_handle)
    finally:
        producer.shutdown()

    # Another tenant's equally named topic cannot reach this tenant's timer.
    other = Producer(node.client_config(*OTHER_TENANT), ("delayed",))
    other.startup()
    try:
        with pytest.raises(Exception, match="not one this service issued"):
            other.recall_message("delayed", keep.recall_handle)
    finally:
        other.shutdown()

    node.kill()  # SIGKILL: the recall and the remaining timer must both be durable already
    node.restart()
    consumer = SimpleConsumer(cfg, "g1", {"delayed": FilterExpression()}, await_duration=3)
    consumer.startup()
    try:
        got: list = []
        deadline = due + 6
        while time.time() < deadline:
            got.extend(consumer.receive(32, 15))
        assert [m.body for m in got] == [b"keep"]
        assert got[0].message_id == keep.message_id
        consumer.ack(got[0])
    finally:
        consumer.shutdown()

    producer = Producer(cfg, ("delayed",))
    producer.startup()
    try:
        with pytest.raises(Exception, match="delivered or recalled already"):
            producer.recall_message("delayed", keep.recall_handle)  # too late: delivered
    finally:
        producer.shutdown()
