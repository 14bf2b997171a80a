"""Status construction and the fixed mappings from lower-layer outcomes to protocol codes."""

from __future__ import annotations

from typing import Final

from rocketmq.grpc_protocol import definition_pb2 as pb

from brokers.node.auth import AuthFailure
from brokers.node.quota import QuotaVerdict
from brokers.node.store.model import AppendStatus

Code = pb.Code

OK_STATUS: Final = pb.Status(code=Code.OK, message="OK")
#: OK_STATUS serialized, for the responses written as bytes (SendMessage, AckMessage).
OK_STATUS_BYTES: Final = OK_STATUS.SerializeToString()


def status(code: int, message: str) -> pb.Status:
    return pb.Status(code=code, message=message)


AUTH_CODES: Final = {
    AuthFailure.UNAUTHENTICATED: Code.UNAUTHORIZED,
    AuthFailure.FORBIDDEN: Code.FORBIDDEN,
}

QUOTA_CODES: Final = {
    QuotaVerdict.THROTTLED: Code.TOO_MANY_REQUESTS,
    QuotaVerdict.TOO_LARGE: Code.MESSAGE_BODY_TOO_LARGE,
    # The client maps 40200 to PaymentRequiredException: "your plan's storage is used up".
    QuotaVerdict.STORAGE_FULL: Code.PAYMENT_REQUIRED,
}

APPEND_CODES: Final = {
    AppendStatus.OK: Code.OK,
    AppendStatus.MESSAGE_TOO_LARGE: Code.MESSAGE_BODY_TOO_LARGE,
    AppendStatus.INVALID_TOPIC: Code.ILLEGAL_TOPIC,
    AppendStatus.INVALID_PROPERTIES: Code.ILLEGAL_MESSAGE_PROPERTY_KEY,
    AppendStatus.DISK_FULL: Code.INTERNAL_SERVER_ERROR,
    AppendStatus.STORAGE_CAP_EXCEEDED: Code.PAYMENT_REQUIRED,
    AppendStatus.STORE_CLOSED: Code.INTERNAL_SERVER_ERROR,
    AppendStatus.IO_ERROR: Code.INTERNAL_SERVER_ERROR,
}


def delivery_error_code(code_name: str) -> int:
    """Wire code for a delivery/filter ``ErrorCode`` name (protocol-neutral -> protocol)."""
    return _DELIVERY_CODES.get(code_name, Code.INTERNAL_SERVER_ERROR)


_DELIVERY_CODES: Final = {
    "ILLEGAL_FILTER_EXPRESSION": Code.ILLEGAL_FILTER_EXPRESSION,
    "ILLEGAL_INVISIBLE_TIME": Code.ILLEGAL_INVISIBLE_TIME,
    "ILLEGAL_ARGUMENT": Code.BAD_REQUEST,
    "ENGINE_STOPPED": Code.INTERNAL_SERVER_ERROR,
    "STORE_ERROR": Code.INTERNAL_SERVER_ERROR,
}
