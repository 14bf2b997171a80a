"""ReceiveMessage yields pre-serialized frames (servicer.RAW_RESPONSES): they must parse to the
same ``ReceiveMessageResponse`` the protobuf objects would have made."""

from __future__ import annotations

from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.grpc.codec import (
    _varint,
    delivered_frame,
    response_message_frame,
    to_delivered_message,
)
from brokers.node.grpc.servicer import RAW_RESPONSES, MessagingServicer, method_handlers
from brokers.node.store.model import MessageFlag, StoredMessage


def _stored(props: dict[str, str], body: bytes, flags: int = 0) -> StoredMessage:
    return StoredMessage("0A00000100000000000004D2", "ns1%orders", 3, 70000, 1234, 200,
                         memoryview(body), "tag-a", ("k1", "k2"), props, 1_700_000_000_123,
                         1_700_000_000_456, "10.0.0.1:1", flags, 0)


def test_varint_matches_protobuf() -> None:
    assert _varint(0) == b"\x00" and response_message_frame(b"") == b"\x12\x00"
    for n in (1, 127, 128, 300, 16383, 16384, 2**21, 2**35 + 7):
        assert b"\x20" + _varint(n) == spb.SendResultEntry(offset=n).SerializeToString()


def test_frames_parse_to_the_delivered_message() -> None:
    cases = [
        _stored({"a": "b", "__UNIQ_KEY": "01AB"}, b"x" * 1024),
        _stored({"__MESSAGE_GROUP": "g1", "c": "d"}, b"\x00\x01" * 5000, MessageFlag.FIFO),
        _stored({"__DELIVERY_TIME_MS": "1700000001234"}, b"y", MessageFlag.DELAY),
        _stored({"__DLQ_ORIGIN": "ns1%orders", "__ORIGIN_MSG_ID": "0A00"}, b"z" * 200),
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


def test_only_raw_methods_skip_the_serializer() -> None:
    handlers = method_handlers(MessagingServicer.__new__(MessagingServicer))
    assert "ReceiveMessage" in RAW_RESPONSES
    for name, handler in handlers.items():
        assert (handler.response_serializer is None) == (name in RAW_RESPONSES), name
        assert handler.request_deserializer is not None
    assert handlers["Telemetry"].request_streaming and handlers["Telemetry"].response_streaming
    assert handlers["ReceiveMessage"].response_streaming
    assert not handlers["ReceiveMessage"].request_streaming
