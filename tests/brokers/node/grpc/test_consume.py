"""Consumption through the gRPC endpoint: delivered fields, receipt handles, push, transactions."""

from __future__ import annotations

import hashlib
import threading
import time

import pytest
from rocketmq import (
    ConsumeResult,
    FilterExpression,
    Message,
    MessageListener,
    Producer,
    PushConsumer,
    SimpleConsumer,
    TransactionChecker,
    TransactionResolution,
)
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from ..conftest import ALL_ACCESS, OTHER_TENANT, NodeHandle, RawClient, sign_headers

pytestmark = pytest.mark.slow
AK, SK, NS = ALL_ACCESS


def _receive(consumer: SimpleConsumer, want: int, timeout: float = 15) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got.extend(consumer.receive(16, 15))
    return got


def _raw_receive(raw: RawClient, md: list, ns: str = NS) -> list[spb.ReceiveMessageResponse]:
    req = spb.ReceiveMessageRequest(
        group=pb.Resource(resource_namespace=ns, name="g1"),
        message_queue=pb.MessageQueue(topic=pb.Resource(resource_namespace=ns, name="orders"),
                                      id=0),
        filter_expression=pb.FilterExpression(type=pb.TAG, expression="*"),
        batch_size=4, invisible_duration={"seconds": 30},
        long_polling_timeout={"seconds": 2},
    )
    return list(raw.stub.ReceiveMessage(req, metadata=md, timeout=10))


def test_delivered_message_carries_every_system_property(node: NodeHandle,
                                                         raw_client: RawClient) -> None:
    cfg = node.client_config(*ALL_ACCESS)
    producer = Producer(cfg, ("orders",))
    producer.startup()
    try:
        m = Message()
        m.topic, m.body, m.tag, m.keys = "orders", b"payload", "TagA", "k1"
        m.add_property("color", "red")
        sent_id = producer.send(m).message_id
    finally:
        producer.shutdown()
    frames = _raw_receive(raw_client, sign_headers(*ALL_ACCESS))
    assert frames[0].status.code == pb.Code.OK
    assert frames[-1].HasField("delivery_timestamp")
    msgs = [f.message for f in frames if f.HasField("message")]
    assert len(msgs) == 1
    got = msgs[0]
    sp = got.system_properties
    assert got.topic == pb.Resource(resource_namespace=NS, name="orders")
    assert got.body == b"payload" and dict(got.user_properties) == {"color": "red"}
    assert sp.message_id == sent_id  # the id the producer got back
    assert sp.body_encoding == pb.IDENTITY
    assert sp.body_digest.type == pb.MD5
    assert sp.body_digest.checksum == hashlib.md5(b"payload").hexdigest().upper()
    assert sp.message_type == pb.NORMAL and sp.tag == "TagA" and list(sp.keys) == ["k1"]
    assert sp.born_timestamp.seconds > 0 and sp.store_timestamp.seconds >= sp.born_timestamp.seconds
    assert sp.born_host and sp.receipt_handle and sp.delivery_attempt == 1
    assert sp.queue_offset == 0

    ack = raw_client.stub.AckMessage(spb.AckMessageRequest(
        group=pb.Resource(resource_namespace=NS, name="g1"),
        topic=pb.Resource(resource_namespace=NS, name="orders"),
        entries=[spb.AckMessageEntry(message_id=sp.message_id, receipt_handle=sp.receipt_handle)],
    ), metadata=sign_headers(*ALL_ACCESS), timeout=5)
    assert ack.status.code == pb.Code.OK


def test_unknown_and_foreign_receipt_handles(node: NodeHandle, raw_client: RawClient) -> None:
    def ack(handle: str, cred: tuple[str, str, str]) -> pb.Status:
        ns = cred[2]
        return raw_client.stub.AckMessage(spb.AckMessageRequest(
            group=pb.Resource(resource_namespace=ns, name="g1"),
            topic=pb.Resource(resource_namespace=ns, name="orders"),
            entries=[spb.AckMessageEntry(message_id="X", receipt_handle=handle)],
        ), metadata=sign_headers(*cred), timeout=5).status

    assert ack("not-a-handle", ALL_ACCESS).code == pb.Code.INVALID_RECEIPT_HANDLE
    raw_client.stub.SendMessage(spb.SendMessageRequest(messages=[pb.Message(
        topic=pb.Resource(resource_namespace=NS, name="orders"), body=b"x",
        system_properties=pb.SystemProperties(message_id="01AA", message_type=pb.NORMAL))]),
        metadata=sign_headers(*ALL_ACCESS), timeout=5)
    frames = _raw_receive(raw_client, sign_headers(*ALL_ACCESS))
    handle = next(f.message for f in frames if f.HasField("message")).system_properties.receipt_handle
    # Another tenant holding the same-named group and topic cannot use ns1's handle.
    assert ack(handle, OTHER_TENANT).code == pb.Code.INVALID_RECEIPT_HANDLE
    change = raw_client.stub.ChangeInvisibleDuration(spb.ChangeInvisibleDurationRequest(
        group=pb.Resource(resource_namespace=NS, name="g1"),
        topic=pb.Resource(resource_namespace=NS, name="orders"),
        receipt_handle="bogus", invisible_duration={"seconds": 5}, message_id="X",
    ), metadata=sign_headers(*ALL_ACCESS), timeout=5)
    assert change.status.code == pb.Code.INVALID_RECEIPT_HANDLE
    assert change.receipt_handle == "bogus"  # always a usable handle back (G9)
    assert ack(handle, ALL_ACCESS).code == pb.Code.OK


def test_push_consumer_consumes_and_acks(node: NodeHandle) -> None:
    cfg = node.client_config(*ALL_ACCESS)
    seen: list[bytes] = []
    done = threading.Event()

    class Listener(MessageListener):
        def consume(self, message: Message) -> ConsumeResult:
            seen.append(message.body)
            if len(seen) >= 5:
                done.set()
            return ConsumeResult.SUCCESS

    consumer = PushConsumer(cfg, "g1", Listener(), {"orders": FilterExpression()})
    consumer.startup()  # needs the Settings reply within 10 s
    producer = Producer(cfg, ("orders",))
    producer.startup()
    try:
        for i in range(5):
            m = Message()
            m.topic, m.body = "orders", b"push %d" % i
            producer.send(m)
        assert done.wait(20)
        assert sorted(seen) == [b"push %d" % i for i in range(5)]
    finally:
        producer.shutdown()
        consumer.shutdown()


class _Checker(TransactionChecker):
    def check(self, message: Message) -> TransactionResolution:
        return TransactionResolution.COMMIT


def test_transaction_commit_and_rollback(node: NodeHandle) -> None:
    cfg = node.client_config(*ALL_ACCESS)
    producer = Producer(cfg, ("txn",), checker=_Checker())
    producer.startup()
    consumer = SimpleConsumer(cfg, "g1", {"txn": FilterExpression()}, await_duration=2)
    consumer.startup()
    try:
        for body, commit in ((b"keep", True), (b"drop", False)):
            tx = producer.begin_transaction()
            m = Message()
            m.topic, m.body = "txn", body
            producer.send(m, tx)
            tx.commit() if commit else tx.rollback()
        got = _receive(consumer, 1, timeout=6)
        assert [m.body for m in got] == [b"keep"]
        consumer.ack(got[0])
    finally:
        consumer.shutdown()
        producer.shutdown()


def test_orphaned_transaction_is_checked_over_telemetry(node: NodeHandle) -> None:
    """No commit from the producer: the node asks its checker (recover_orphaned_transaction
    command on the Telemetry stream) and the checker's COMMIT makes the message deliverable."""
    cfg = node.client_config(*ALL_ACCESS)
    checked: list[bytes] = []

    class Checker(TransactionChecker):
        def check(self, message: Message) -> TransactionResolution:
            checked.append(message.body)
            return TransactionResolution.COMMIT

    producer = Producer(cfg, ("txn",), checker=Checker())
    producer.startup()
    consumer = SimpleConsumer(cfg, "g1", {"txn": FilterExpression()}, await_duration=3)
    consumer.startup()
    try:
        tx = producer.begin_transaction()
        m = Message()
        m.topic, m.body = "txn", b"orphan"
        producer.send(m, tx)  # ... and never commit
        got = _receive(consumer, 1, timeout=25)
        assert checked == [b"orphan"]
        assert [x.body for x in got] == [b"orphan"]
    finally:
        consumer.shutdown()
        producer.shutdown()


def test_one_ack_request_with_several_entries(node: NodeHandle, raw_client: RawClient) -> None:
    """Entries of one AckMessage are acked together (engine.ack_many): each gets its own
    status, the top status is the first failure's, and a repeat of an acked handle is OK."""
    md = sign_headers(*ALL_ACCESS)
    for i in range(3):
        raw_client.stub.SendMessage(spb.SendMessageRequest(messages=[pb.Message(
            topic=pb.Resource(resource_namespace=NS, name="orders"), body=b"m%d" % i,
            system_properties=pb.SystemProperties(message_id=f"01B{i}", message_type=pb.NORMAL))]),
            metadata=md, timeout=5)
    handles: list[tuple[str, str]] = []
    for _ in range(10):
        frames = _raw_receive(raw_client, md)
        handles += [(f.message.system_properties.message_id,
                     f.message.system_properties.receipt_handle)
                    for f in frames if f.HasField("message")]
        if len(handles) >= 3:
            break
    assert len(handles) == 3

    def ack(pairs: list[tuple[str, str]]) -> spb.AckMessageResponse:
        return raw_client.stub.AckMessage(spb.AckMessageRequest(
            group=pb.Resource(resource_namespace=NS, name="g1"),
            topic=pb.Resource(resource_namespace=NS, name="orders"),
            entries=[spb.AckMessageEntry(message_id=m, receipt_handle=h) for m, h in pairs],
        ), metadata=md, timeout=5)

    first = ack(handles[:2])
    assert first.status.code == pb.Code.OK
    assert [e.status.code for e in first.entries] == [pb.Code.OK, pb.Code.OK]
    assert [e.message_id for e in first.entries] == [handles[0][0], handles[1][0]]
    mixed = ack([handles[0], ("X", "not-a-handle"), handles[2]])
    assert [e.status.code for e in mixed.entries] == [
        pb.Code.OK, pb.Code.INVALID_RECEIPT_HANDLE, pb.Code.OK]
    assert mixed.status.code == pb.Code.INVALID_RECEIPT_HANDLE
    assert mixed.entries[1].receipt_handle == "not-a-handle"
