"""Errors the gRPC layer raises, each carrying its protocol ``Code``.

Handlers raise these; the servicer boundary (``boundary.py``) is the one place that turns them
into a response ``status`` (gRPC status stays OK, protocol doc §0).
"""

from __future__ import annotations

from typing import ClassVar

from rocketmq.grpc_protocol import definition_pb2 as pb

Code = pb.Code


class MqError(Exception):
    """Base: a refusal the client should see in ``status``."""

    code: ClassVar[int] = Code.INTERNAL_ERROR

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]


class BadRequest(MqError):
    code = Code.BAD_REQUEST


class Unauthorized(MqError):
    code = Code.UNAUTHORIZED


class Forbidden(MqError):
    code = Code.FORBIDDEN


class TopicNotFound(MqError):
    code = Code.TOPIC_NOT_FOUND


class GroupNotFound(MqError):
    code = Code.CONSUMER_GROUP_NOT_FOUND


class TooManyRequests(MqError):
    code = Code.TOO_MANY_REQUESTS


class BodyTooLarge(MqError):
    code = Code.MESSAGE_BODY_TOO_LARGE


class PaymentRequired(MqError):
    code = Code.PAYMENT_REQUIRED


class Internal(MqError):
    code = Code.INTERNAL_SERVER_ERROR
