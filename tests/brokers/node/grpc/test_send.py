"""Producing with the official SDK against a real node process."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from rocketmq import Message, Producer

from brokers.node.store.msgid import decode_message_id

from ..conftest import ALL_ACCESS, NodeHandle


def _message(topic: str, body: bytes, **props: str) -> Message:
    m = Message()
    m.topic = topic
    m.body = body
    m.tag = "TagA"
    m.keys = "key-1"
    for k, v in props.items():
        m.add_property(k, v)
    return m


@pytest.fixture
def producer(node: NodeHandle):  # type: ignore[no-untyped-def]
    p = Producer(node.client_config(*ALL_ACCESS), ("orders",))
    p.startup()
    yield p
    p.shutdown()


def test_sync_and_async_send_return_unique_resolvable_ids(producer: Producer) -> None:
    sync_ids = [producer.send(_message("orders", b"hello %d" % i, color="red")).message_id
                for i in range(20)]
    futures: list[Future] = [producer.send_async(_message("orders", b"async %d" % i))
                             for i in range(20)]
    async_ids = [f.result(timeout=10).message_id for f in futures]
    ids = sync_ids + async_ids
    assert len(set(ids)) == 40
    decoded = [decode_message_id(i) for i in ids]
    assert all(d.node_id == 0 for d in decoded)
    offsets = [d.commitlog_offset for d in decoded]
    assert len(set(offsets)) == 40  # every id points at its own commit-log record


def test_server_spreads_unordered_messages_over_queues(producer: Producer) -> None:
    # The server picks the queue (no queue id on the wire): round robin over the 4 queues of a
    # fresh topic gives queue offsets 0,0,0,0,1,1,1,1.
    offsets = [producer.send(_message("orders", b"x")).offset for _ in range(8)]
    assert sorted(offsets) == [0, 0, 0, 0, 1, 1, 1, 1]


def test_fifo_messages_of_a_group_share_a_queue(node: NodeHandle) -> None:
    p = Producer(node.client_config(*ALL_ACCESS), ("fifo-orders",))
    p.startup()
    try:
        offsets = []
        for i in range(6):
            m = _message("fifo-orders", b"step %d" % i)
            m.message_group = "order-42"
            offsets.append(p.send(m).offset)
        assert offsets == sorted(offsets) and offsets[-1] - offsets[0] == 5
    finally:
        p.shutdown()


def test_metrics_count_messages_and_bytes(node: NodeHandle, producer: Producer) -> None:
    for _ in range(3):
        producer.send(_message("orders", b"12345"))
    count = node.metric("mq_messages_in_total", namespace="ns1", topic="orders")
    nbytes = node.metric("mq_bytes_in_total", namespace="ns1", topic="orders")
    assert count >= 3 and nbytes == 5 * count  # >= : the SDK may retry a slow send (G17)
