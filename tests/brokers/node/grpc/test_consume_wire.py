"""AckMessage returns its response as bytes built directly (servicer.RAW_RESPONSES); they must
parse to the AckMessageResponse the protobuf objects would have made."""

from __future__ import annotations

from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.delivery import AckStatus
from brokers.node.grpc.codec import field
from brokers.node.grpc.consume import _ACK_STATUS_BYTES, _ack_entry
from brokers.node.grpc.status import OK_STATUS, OK_STATUS_BYTES, status


def test_ack_entries_parse_like_protobuf() -> None:
    cases = [("0A00000100000000000004D2", "h" * 150, AckStatus.OK), ("", "x", AckStatus.EXPIRED),
             ("id", "", AckStatus.INVALID_HANDLE), ("é", "h" * 20000, AckStatus.ALREADY_ACKED)]
    raw = field(b"\x0a", _ACK_STATUS_BYTES[AckStatus.EXPIRED]) + b"".join(
        _ack_entry(mid, handle, _ACK_STATUS_BYTES[result]) for mid, handle, result in cases)
    expired = status(pb.Code.INVALID_RECEIPT_HANDLE, "receipt handle is expired")
    invalid = status(pb.Code.INVALID_RECEIPT_HANDLE, "receipt handle is invalid handle")
    want = spb.AckMessageResponse(status=expired, entries=[
        spb.AckMessageResultEntry(message_id=mid, receipt_handle=handle, status=st)
        for (mid, handle, _), st in zip(cases, (OK_STATUS, expired, invalid, OK_STATUS))])
    got = spb.AckMessageResponse.FromString(raw)
    assert got == want
    assert got.SerializeToString(deterministic=True) == want.SerializeToString(deterministic=True)


def test_every_ack_status_has_its_bytes() -> None:
    assert {r for r in AckStatus} == set(_ACK_STATUS_BYTES)
    assert _ACK_STATUS_BYTES[AckStatus.OK] is OK_STATUS_BYTES
    assert _ACK_STATUS_BYTES[AckStatus.ALREADY_ACKED] is OK_STATUS_BYTES


def test_receive_frames_are_the_delivered_frames() -> None:
    from brokers.node.delivery import Delivery
    from brokers.node.grpc.codec import delivered_frame
    from brokers.node.grpc.consume import _frames
    from brokers.node.store.model import StoredMessage

    stored = [StoredMessage(f"0A0000010000000000000{i:03X}", "ns1%orders", 1, i, 0, 10,
                            memoryview(b"b" * (i + 1)), "t", (), {"k": "v"}, 5, 6, "h", 0, 0)
              for i in range(3)]
    deliveries = [Delivery(m, f"handle-{i}", i + 1, 10_000 + 1_500 * i)
                  for i, m in enumerate(stored)]
    frames, nbytes = _frames(deliveries, 10_500)
    assert nbytes == 1 + 2 + 3
    assert frames == [delivered_frame(m, receipt_handle=h, delivery_attempt=a,
                                      invisible_duration_s=max(0, until - 10_500) / 1000)
                      for m, h, a, until in deliveries]
