"""ReceiveMessage yields pre-serialized frames (servicer.RAW_RESPONSES): they must parse to the
same ``ReceiveMessageResponse`` the protobuf objects would have made."""

from __future__ import annotations

import hashlib

from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.grpc.codec import (
    PROP_BODY_MD5,
    _varint,
    message_type_of,
    public_message_id,
    split_stored_topic,
    delivered_frame,
    response_message_frame,
    to_delivered_message,
)
from brokers.node.grpc.servicer import RAW_RESPONSES, MessagingServicer, method_handlers
from brokers.node.store.model import (
    PROP_DELIVERY_TIME_MS,
    PROP_DLQ_ORIGIN,
    PROP_MESSAGE_GROUP,
    PROP_ORIGIN_MSG_ID,
    PROP_ORIGIN_TOPIC,
    MessageFlag,
    StoredMessage,
)


def _stored(props: dict[str, str], body: bytes, flags: int = 0) -> StoredMessage:
    return StoredMessage("0A00000100000000000004D2", "ns1%orders", 3, 70000, 1234, 200,
                         memoryview(body), "tag-a", ("k1", "k2"), props, 1_700_000_000_123,
                         1_700_000_000_456, "10.0.0.1:1", flags, 0)


def _reference_delivered(
    stored: StoredMessage,
    *,
    receipt_handle: str,
    delivery_attempt: int,
    invisible_duration_s: float | None = None,
    store_host: str = "",
) -> pb.Message:
    """The delivered form as first written (nested keyword arguments): the reference."""
    props = stored.properties
    namespace, topic = split_stored_topic(props.get(PROP_ORIGIN_TOPIC) or stored.topic)
    body = bytes(stored.body)
    md5 = props.get(PROP_BODY_MD5) or hashlib.md5(body).hexdigest().upper()
    born, stored_ms = stored.born_timestamp_ms, stored.store_timestamp_ms
    sp = pb.SystemProperties(
        message_id=props.get(PROP_ORIGIN_MSG_ID) or stored.msg_id,
        body_digest={"type": pb.MD5, "checksum": md5},
        body_encoding=pb.IDENTITY,
        message_type=message_type_of(stored.flags),
        born_timestamp={"seconds": born // 1000, "nanos": born % 1000 * 1_000_000},
        born_host=stored.born_host,
        store_timestamp={"seconds": stored_ms // 1000, "nanos": stored_ms % 1000 * 1_000_000},
        store_host=store_host,
        queue_id=stored.queue_id,
        queue_offset=stored.queue_offset,
        receipt_handle=receipt_handle,
        delivery_attempt=max(1, delivery_attempt),
    )
    if stored.tag:
        sp.tag = stored.tag
    if stored.keys:
        sp.keys.extend(stored.keys)
    if PROP_MESSAGE_GROUP in props:
        sp.message_group = props[PROP_MESSAGE_GROUP]
    if PROP_DELIVERY_TIME_MS in props:
        due = int(props[PROP_DELIVERY_TIME_MS])
        ts = sp.delivery_timestamp
        ts.seconds, ts.nanos = due // 1000, due % 1000 * 1_000_000
    if invisible_duration_s is not None:
        whole = int(invisible_duration_s)
        inv = sp.invisible_duration
        inv.seconds, inv.nanos = whole, int((invisible_duration_s - whole) * 1e9)
    if PROP_DLQ_ORIGIN in props:
        sp.dead_letter_queue.CopyFrom(
            pb.DeadLetterQueue(topic=props[PROP_DLQ_ORIGIN], message_id=public_message_id(stored))
        )
    return pb.Message(
        topic=pb.Resource(resource_namespace=namespace, name=topic),
        user_properties={k: v for k, v in props.items() if not k.startswith("__")},
        system_properties=sp,
        body=body,
    )


def test_varint_matches_protobuf() -> None:
    assert _varint(0) == b"\x00" and response_message_frame(b"") == b"\x12\x00"
    for n in (1, 127, 128, 300, 16383, 16384, 2**21 - 1, 2**21, 2**28 - 1, 2**28, 2**35 + 7,
              2**63 - 1):
        assert b"\x20" + _varint(n) == spb.SendResultEntry(offset=n).SerializeToString()


def test_frames_parse_to_the_delivered_message() -> None:
    cases = [
        _stored({"a": "b", "__UNIQ_KEY": "01AB"}, b"x" * 1024),
        _stored({"__MESSAGE_GROUP": "g1", "c": "d"}, b"\x00\x01" * 5000, MessageFlag.FIFO),
        _stored({"__DELIVERY_TIME_MS": "1700000001234"}, b"y", MessageFlag.DELAY),
        _stored({"__DLQ_ORIGIN": "ns1%orders", "__ORIGIN_MSG_ID": "0A00"}, b"z" * 200),
        StoredMessage("0A00000100000000000004D3", "plain", 0, 0, 0, 10, b"b", "", (), {}, 0, 0,
                      "", int(MessageFlag.TRANSACTION_COMMIT), 0),
    ]
    for stored in cases:
        for attempt, invisible in ((1, 30.0), (4, 0.25), (2, None)):
            frame = delivered_frame(stored, receipt_handle="h" * 150, delivery_attempt=attempt,
                                    invisible_duration_s=invisible)
            want = spb.ReceiveMessageResponse(message=to_delivered_message(
                stored, receipt_handle="h" * 150, delivery_attempt=attempt,
                invisible_duration_s=invisible))
            got = spb.ReceiveMessageResponse.FromString(frame)
            assert got == want
            assert got.WhichOneof("content") == "message"
            assert got.message == _reference_delivered(
                stored, receipt_handle="h" * 150, delivery_attempt=attempt,
                invisible_duration_s=invisible)
            # Field presence too (an empty but present sub-message is not an absent one).
            assert (got.SerializeToString(deterministic=True)
                    == want.SerializeToString(deterministic=True))


def test_only_raw_methods_skip_the_serializer() -> None:
    handlers = method_handlers(MessagingServicer.__new__(MessagingServicer))
    assert "ReceiveMessage" in RAW_RESPONSES
    for name, handler in handlers.items():
        assert (handler.response_serializer is None) == (name in RAW_RESPONSES), name
        assert handler.request_deserializer is not None
    assert handlers["Telemetry"].request_streaming and handlers["Telemetry"].response_streaming
    assert handlers["ReceiveMessage"].response_streaming
    assert not handlers["ReceiveMessage"].request_streaming


def test_closing_timestamp_frame() -> None:
    from brokers.node.grpc.consume import timestamp_frame

    for now_ns in (1_795_270_485_000_000_000, 1_795_270_485_123_456_789):
        got = spb.ReceiveMessageResponse.FromString(timestamp_frame(now_ns))
        assert got.WhichOneof("content") == "delivery_timestamp"
        assert got.delivery_timestamp.ToNanoseconds() == now_ns
