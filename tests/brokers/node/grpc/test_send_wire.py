"""SendMessage returns its response as bytes built directly (servicer.RAW_RESPONSES); they must
parse to the SendMessageResponse the protobuf objects would have made."""

from __future__ import annotations

from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.grpc.codec import field
from brokers.node.grpc.send import _entry_status_bytes, _ok_entry
from brokers.node.grpc.status import OK_STATUS, OK_STATUS_BYTES
from brokers.node.store.model import AppendResult, AppendStatus


def test_ok_entries_parse_like_protobuf() -> None:
    for offset in (0, 1, 127, 128, 70000, 2**40):
        mid = "0A00000100000000000004D2"
        raw = field(b"\x0a", OK_STATUS_BYTES) + _ok_entry(mid, "TXN-1", offset)
        want = spb.SendMessageResponse(status=OK_STATUS, entries=[spb.SendResultEntry(
            status=OK_STATUS, message_id=mid, transaction_id="TXN-1", offset=offset)])
        assert spb.SendMessageResponse.FromString(raw) == want


def test_failure_status_bytes() -> None:
    result = AppendResult(AppendStatus.DISK_FULL, "", -1, -1, 0, "disk is full")
    st = pb.Status.FromString(_entry_status_bytes(result))
    assert st.code == pb.Code.INTERNAL_SERVER_ERROR and st.message == "disk is full"


def test_ok_entry_with_shared_or_long_ids() -> None:
    mid = "0A00000100000000000004D2"
    for txn in (mid, "T" * 300, ""):
        raw = _ok_entry(mid, txn, 5)
        want = spb.SendMessageResponse(entries=[spb.SendResultEntry(
            status=OK_STATUS, message_id=mid, transaction_id=txn, offset=5)])
        assert spb.SendMessageResponse.FromString(raw) == want
