"""Quota refusals and malformed requests: clear statuses, and the node keeps serving."""

from __future__ import annotations

import hashlib
import zlib
from typing import Any, Callable

import pytest
from rocketmq import Message, Producer
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb
from rocketmq.v5.exception import (
    PaymentRequiredException,
    TooManyRequestsException,
)

from ..conftest import ALL_ACCESS, NodeHandle, RawClient, default_state, sign_headers

AK, SK, NS = ALL_ACCESS


def _state_with_quotas(**quotas: Any) -> dict[str, Any]:
    state = default_state()
    state["namespaces"]["ns1"]["quotas"] = quotas
    return state


def _send(producer: Producer, body: bytes) -> None:
    m = Message()
    m.topic, m.body = "orders", body
    producer.send(m)


def _producer(node: NodeHandle) -> Producer:
    p = Producer(node.client_config(*ALL_ACCESS), ("orders",))
    p.startup()
    return p


def test_send_tps_quota_throttles(start_node: Callable[..., NodeHandle]) -> None:
    node = start_node(_state_with_quotas(send_tps=5))
    p = _producer(node)
    try:
        with pytest.raises(TooManyRequestsException, match="5 msgs/s"):
            for _ in range(50):
                _send(p, b"x")
    finally:
        p.shutdown()
    _, text = node.http_get("/metrics")
    assert 'mq_throttled_requests_total{namespace="ns1",quota="throttled"}' in text


def test_max_message_size_names_the_limit(start_node: Callable[..., NodeHandle]) -> None:
    node = start_node(_state_with_quotas(max_message_bytes=1000))
    p = _producer(node)
    try:
        _send(p, b"x" * 1000)
        # The SDK learnt the limit from Settings and refuses locally; a raw request shows the
        # server's own answer.
        with pytest.raises(Exception, match="1000"):
            _send(p, b"x" * 1001)
    finally:
        p.shutdown()
    raw = RawClient(node.endpoint)
    try:
        resp = raw.stub.SendMessage(_request([_msg(b"x" * 1001)]), metadata=sign_headers(AK, SK, NS),
                                    timeout=5)
        assert resp.status.code == pb.Code.MESSAGE_BODY_TOO_LARGE
        assert "1000 bytes" in resp.status.message
    finally:
        raw.close()


def test_receive_tps_quota_throttles(start_node: Callable[..., NodeHandle]) -> None:
    node = start_node(_state_with_quotas(receive_tps=1))
    raw = RawClient(node.endpoint)
    md = sign_headers(AK, SK, NS)
    try:
        batch = [_msg(b"m%d" % i) for i in range(8)]
        assert raw.stub.SendMessage(_request(batch), metadata=md, timeout=5).status.code \
            == pb.Code.OK
        req = spb.ReceiveMessageRequest(
            group=pb.Resource(resource_namespace=NS, name="g1"),
            message_queue=pb.MessageQueue(topic=pb.Resource(resource_namespace=NS, name="orders")),
            filter_expression=pb.FilterExpression(type=pb.TAG, expression="*"),
            batch_size=8, invisible_duration={"seconds": 30}, long_polling_timeout={"seconds": 1},
        )
        first = list(raw.stub.ReceiveMessage(req, metadata=md, timeout=10))
        assert first[0].status.code == pb.Code.OK
        assert sum(f.HasField("message") for f in first) >= 2  # charged after the fact: debt
        second = list(raw.stub.ReceiveMessage(req, metadata=md, timeout=10))
        assert second[0].status.code == pb.Code.TOO_MANY_REQUESTS
        assert "receive rate" in second[0].status.message
    finally:
        raw.close()


def test_storage_quota_refuses_with_payment_required(
    start_node: Callable[..., NodeHandle],
) -> None:
    node = start_node(_state_with_quotas(storage_bytes=2500))
    p = _producer(node)
    try:
        _send(p, b"x" * 1000)
        _send(p, b"x" * 1000)
        with pytest.raises(PaymentRequiredException, match="storage quota"):
            _send(p, b"x" * 1000)
    finally:
        p.shutdown()


def _msg(body: bytes, topic: str = "orders", **sys: Any) -> pb.Message:
    sp = pb.SystemProperties(message_id=sys.pop("message_id", "01ABCDEF"),
                             message_type=sys.pop("message_type", pb.NORMAL), **sys)
    return pb.Message(topic=pb.Resource(resource_namespace=NS, name=topic), body=body,
                      system_properties=sp)


def _request(messages: list[pb.Message]) -> spb.SendMessageRequest:
    return spb.SendMessageRequest(messages=messages)


def _with_props(props: dict[str, str]) -> pb.Message:
    m = _msg(b"x")
    m.user_properties.update(props)
    return m


@pytest.mark.parametrize("request_, code", [
    (_request([]), pb.Code.MESSAGE_CORRUPTED),
    (_request([_msg(b"x", topic="")]), pb.Code.ILLEGAL_TOPIC),
    (_request([_msg(b"")]), pb.Code.MESSAGE_BODY_EMPTY),
    (_request([_with_props({"__SYSTEM": "1"})]), pb.Code.ILLEGAL_MESSAGE_PROPERTY_KEY),
    (_request([_with_props({"bad\x01key": "1"})]), pb.Code.ILLEGAL_MESSAGE_PROPERTY_KEY),
    (_request([_msg(b"x", tag="a|b")]), pb.Code.ILLEGAL_MESSAGE_TAG),
    (_request([_msg(b"x", message_id="")]), pb.Code.ILLEGAL_MESSAGE_ID),
    (_request([_msg(b"x", message_type=pb.FIFO, message_group="g")]),
     pb.Code.MESSAGE_PROPERTY_CONFLICT_WITH_TYPE),
    (_request([_msg(b"x")] * 257), pb.Code.BAD_REQUEST),
    (_request([_msg(b"x"), _msg(b"x", topic="fifo-orders")]), pb.Code.MESSAGE_CORRUPTED),
    (_request([_msg(b"x", body_digest=pb.Digest(type=pb.MD5, checksum="00" * 16))]),
     pb.Code.MESSAGE_CORRUPTED),
], ids=["no-messages", "no-topic", "empty-body", "reserved-key", "control-key", "bad-tag",
        "no-id", "type-conflict", "too-many", "mixed-topics", "bad-digest"])
def test_malformed_sends_get_clear_statuses(shared_raw: RawClient, request_: Any,
                                            code: int) -> None:
    resp = shared_raw.stub.SendMessage(request_, metadata=sign_headers(AK, SK, NS), timeout=5)
    assert resp.status.code == code and resp.status.message
    # ... and the node still serves.
    ok = shared_raw.stub.SendMessage(_request([_msg(b"fine")]), metadata=sign_headers(AK, SK, NS),
                                     timeout=5)
    assert ok.status.code == pb.Code.OK and ok.entries[0].status.code == pb.Code.OK


@pytest.mark.parametrize("digest", [
    pb.Digest(type=pb.MD5, checksum=hashlib.md5(b"body").hexdigest().upper()),
    pb.Digest(type=pb.SHA1, checksum=hashlib.sha1(b"body").hexdigest()),
    pb.Digest(type=pb.CRC32, checksum=f"{zlib.crc32(b'body'):08X}"),
    pb.Digest(type=pb.CRC32, checksum=str(zlib.crc32(b"body"))),  # Node.js: decimal
], ids=["md5", "sha1", "crc32-hex", "crc32-decimal"])
def test_client_digests_are_accepted(shared_raw: RawClient, digest: pb.Digest) -> None:
    resp = shared_raw.stub.SendMessage(_request([_msg(b"body", body_digest=digest)]),
                                       metadata=sign_headers(AK, SK, NS), timeout=5)
    assert resp.status.code == pb.Code.OK


def test_batched_send_fills_every_entry(shared_raw: RawClient) -> None:
    resp = shared_raw.stub.SendMessage(_request([_msg(b"m%d" % i) for i in range(16)]),
                                       metadata=sign_headers(AK, SK, NS), timeout=5)
    assert resp.status.code == pb.Code.OK and len(resp.entries) == 16
    assert all(e.status.code == pb.Code.OK for e in resp.entries)
    assert len({e.message_id for e in resp.entries}) == 16
