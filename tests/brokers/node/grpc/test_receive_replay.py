"""A FIFO receive retried with the same attempt id (its reply was lost) gets the same in-flight
messages back instead of leaving the message group locked until they become visible again."""

from __future__ import annotations

import pytest
from rocketmq import Message, Producer
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.grpc.replay import ReceiveReplay

from ..conftest import ALL_ACCESS, NodeHandle, RawClient, sign_headers

AK, SK, NS = ALL_ACCESS
KEY = ("ns", "g", "ns%t", "client", "attempt-1")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_replay_returns_what_is_still_in_flight_until_it_expires() -> None:
    clock = Clock()
    replay = ReceiveReplay(clock=clock)
    replay.remember(KEY, [b"f1", b"f2"], ["h1", "h2"], ttl_s=30)
    assert replay.recall(KEY, lambda hs: [True] * len(hs)) == [b"f1", b"f2"]
    assert replay.recall(KEY, lambda hs: [h == "h2" for h in hs]) == [b"f2"]  # h1 was acked
    assert replay.recall(("other",) * 5, lambda hs: [True] * len(hs)) == []  # type: ignore[arg-type]
    clock.now += 30
    assert replay.recall(KEY, lambda hs: [True] * len(hs)) == [] and len(replay) == 0
    replay.remember(KEY, [b"f1"], ["h1"], ttl_s=30)
    assert replay.recall(KEY, lambda hs: [False]) == [] and len(replay) == 0  # all acked: forgotten


def test_replay_is_bounded_by_entries_and_bytes() -> None:
    replay = ReceiveReplay(max_entries=2, max_bytes=10)
    for i in range(3):
        replay.remember(("ns", "g", "t", "c", str(i)), [b"x" * 3], ["h"], ttl_s=30)
    assert len(replay) == 2
    assert replay.recall(("ns", "g", "t", "c", "0"), lambda hs: [True]) == []  # the oldest went
    replay.remember(("ns", "g", "t", "c", "big"), [b"x" * 11], ["h"], ttl_s=30)  # over the cap
    assert replay.recall(("ns", "g", "t", "c", "big"), lambda hs: [True]) == []


def _receive(raw: RawClient, attempt: str) -> list[spb.ReceiveMessageResponse]:
    req = spb.ReceiveMessageRequest(
        group=pb.Resource(resource_namespace=NS, name="g-fifo"),
        message_queue=pb.MessageQueue(topic=pb.Resource(resource_namespace=NS, name="fifo-orders"), id=0),
        filter_expression=pb.FilterExpression(type=pb.TAG, expression="*"),
        batch_size=1, invisible_duration={"seconds": 30}, long_polling_timeout={"seconds": 1},
        attempt_id=attempt,
    )
    return [f for f in raw.stub.ReceiveMessage(req, metadata=sign_headers(*ALL_ACCESS), timeout=10)
            if f.HasField("message")]


@pytest.mark.slow
def test_a_retried_fifo_attempt_gets_its_messages_again(node: NodeHandle, raw_client: RawClient) -> None:
    producer = Producer(node.client_config(*ALL_ACCESS), ("fifo-orders",))
    producer.startup()
    try:
        for n in range(2):
            m = Message()
            m.topic, m.body, m.message_group = "fifo-orders", f"step {n}".encode(), "order-7"
            producer.send(m)
    finally:
        producer.shutdown()

    [first] = _receive(raw_client, "attempt-1")
    assert first.message.body == b"step 0"
    assert _receive(raw_client, "attempt-2") == []  # the message group is locked: step 0 in flight
    [again] = _receive(raw_client, "attempt-1")  # the first reply "was lost": same attempt again
    assert again.message.body == b"step 0"
    assert again.message.system_properties.receipt_handle == first.message.system_properties.receipt_handle

    ack = spb.AckMessageRequest(
        group=pb.Resource(resource_namespace=NS, name="g-fifo"),
        topic=pb.Resource(resource_namespace=NS, name="fifo-orders"),
        entries=[spb.AckMessageEntry(message_id=again.message.system_properties.message_id,
                                     receipt_handle=again.message.system_properties.receipt_handle)])
    assert raw_client.stub.AckMessage(ack, metadata=sign_headers(*ALL_ACCESS), timeout=5).status.code == pb.OK
    [second] = _receive(raw_client, "attempt-3")  # acked: the group moves on, in order
    assert second.message.body == b"step 1"
    # an acked attempt is not replayed (its messages are no longer in flight)
    assert [f.message.body for f in _receive(raw_client, "attempt-1")] == []
