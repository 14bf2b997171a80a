"""Checks on SendMessage entries (protocol doc §4.4 table). Pure; raise ``MqError`` subclasses."""

from __future__ import annotations

import hashlib
import re
import zlib
from typing import Final

from rocketmq.grpc_protocol import definition_pb2 as pb

from brokers.node.config import TopicSpec, TopicType

from .codec import timestamp_to_ms
from .errors import BadRequest, MqError

Code = pb.Code

MAX_MESSAGES_PER_REQUEST: Final = 256
MAX_USER_PROPERTIES: Final = 128
MAX_PROPERTIES_BYTES: Final = 16 * 1024
MAX_MESSAGE_GROUP_BYTES: Final = 64
MAX_DELAY_MS: Final = 365 * 24 * 3600 * 1000

_ALLOWED_TYPES: Final = {
    TopicType.NORMAL: frozenset({pb.NORMAL}),
    TopicType.FIFO: frozenset({pb.FIFO}),
    TopicType.DELAY: frozenset({pb.DELAY}),
    TopicType.TRANSACTION: frozenset({pb.TRANSACTION}),
    TopicType.MIXED: frozenset({pb.NORMAL, pb.FIFO, pb.DELAY, pb.TRANSACTION}),
}


_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def _has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def check_request_shape(messages: list[pb.Message]) -> str:
    """Count and topic consistency; returns the common bare topic name."""
    if not messages:
        raise MqError("no message in request", Code.MESSAGE_CORRUPTED)
    if len(messages) > MAX_MESSAGES_PER_REQUEST:
        raise BadRequest(
            f"{len(messages)} messages in one request; at most {MAX_MESSAGES_PER_REQUEST} allowed"
        )
    first = messages[0].topic
    name = first.name
    if not name:
        raise MqError("message topic is required", Code.ILLEGAL_TOPIC)
    if len(messages) > 1:
        namespace = first.resource_namespace
        for m in messages:
            topic = m.topic
            if topic.name != name or topic.resource_namespace != namespace:
                raise MqError("all messages of one request must share the topic",
                              Code.MESSAGE_CORRUPTED)
    return name


def effective_type(msg: pb.Message) -> int:
    """The client's declared type, or the one implied by the fields set."""
    sp = msg.system_properties
    if sp.message_type != pb.MESSAGE_TYPE_UNSPECIFIED:
        return sp.message_type
    if sp.HasField("message_group"):
        return pb.FIFO
    if sp.HasField("delivery_timestamp"):
        return pb.DELAY
    return pb.NORMAL


def digest_matches(body: bytes, digest: pb.Digest) -> bool:
    """Check a client-supplied body digest. CRC32 comes as 8 hex digits (Python, Java) or as a
    decimal string (Node.js); MD5 and SHA1 as hex in either case."""
    checksum = digest.checksum.strip()
    if digest.type == pb.CRC32:
        crc = zlib.crc32(body)
        try:
            return int(checksum, 16) == crc or (checksum.isdigit() and int(checksum) == crc)
        except ValueError:
            return False
    if digest.type == pb.MD5:
        return hashlib.md5(body).hexdigest() == checksum.lower()
    if digest.type == pb.SHA1:
        return hashlib.sha1(body).hexdigest() == checksum.lower()
    return True  # unspecified type: nothing to verify


def allowed_types(topic: TopicSpec) -> frozenset[int]:
    """Message types a topic accepts (looked up once per request, not per message)."""
    return _ALLOWED_TYPES[topic.type]


def check_message(msg: pb.Message, topic: TopicSpec, now_ms: int,
                  allowed: frozenset[int] | None = None) -> int:
    """Validate one entry against its topic; returns its message type.

    Runs for every message of every SendMessage: each protobuf field is read once, and the
    loops over properties and keys only run when there are any.
    """
    sp = msg.system_properties
    body = msg.body
    if not body:
        raise MqError("message body is empty", Code.MESSAGE_BODY_EMPTY)
    if sp.HasField("body_digest"):
        digest = sp.body_digest
        if digest.checksum and not digest_matches(body, digest):
            raise MqError("message body does not match its digest", Code.MESSAGE_CORRUPTED)
    if not sp.message_id.strip():
        raise MqError("message_id is required", Code.ILLEGAL_MESSAGE_ID)
    has_tag = sp.HasField("tag")
    tag = sp.tag if has_tag else ""
    size = len(tag.encode()) if tag else 0
    keys = sp.keys
    if keys:
        size += sum(len(k.encode()) for k in keys)
    props = msg.user_properties
    if props:
        if len(props) > MAX_USER_PROPERTIES:
            raise MqError(
                f"{len(props)} user properties; at most {MAX_USER_PROPERTIES} allowed",
                Code.MESSAGE_PROPERTIES_TOO_LARGE,
            )
        for key, value in props.items():
            if not key.strip() or key.startswith("__") or _has_control(key):
                raise MqError(f"illegal user property key {key!r}",
                              Code.ILLEGAL_MESSAGE_PROPERTY_KEY)
            if _has_control(value):
                raise MqError(
                    f"user property {key!r} has control characters",
                    Code.ILLEGAL_MESSAGE_PROPERTY_KEY,
                )
            size += len(key.encode()) + len(value.encode())
    if size > MAX_PROPERTIES_BYTES:
        raise MqError(
            f"properties take {size} bytes; at most {MAX_PROPERTIES_BYTES} allowed",
            Code.MESSAGE_PROPERTIES_TOO_LARGE,
        )
    if has_tag and (not tag.strip() or "|" in tag or _has_control(tag)):
        raise MqError(f"illegal tag {tag!r}", Code.ILLEGAL_MESSAGE_TAG)
    if keys:
        for key in keys:
            if not key.strip() or _has_control(key):
                raise MqError(f"illegal message key {key!r}", Code.ILLEGAL_MESSAGE_KEY)
    has_group = sp.HasField("message_group")
    if has_group:
        group = sp.message_group
        if not group.strip() or _has_control(group) or len(group.encode()) >= MAX_MESSAGE_GROUP_BYTES:
            raise MqError(f"illegal message group {group!r}", Code.ILLEGAL_MESSAGE_GROUP)
    has_delivery = sp.HasField("delivery_timestamp")
    if has_delivery:
        if timestamp_to_ms(sp.delivery_timestamp) - now_ms > MAX_DELAY_MS:
            raise MqError("delivery time is more than 365 days ahead", Code.ILLEGAL_DELIVERY_TIME)
    mtype = sp.message_type
    if mtype == _UNSPECIFIED:  # the type implied by the fields set (as effective_type)
        mtype = _FIFO if has_group else _DELAY if has_delivery else _NORMAL
    if mtype not in (allowed if allowed is not None else _ALLOWED_TYPES[topic.type]):
        raise MqError(
            f"message type {pb.MessageType.Name(mtype)} is not accepted by "
            f"{topic.type.value} topic {topic.name!r}",
            Code.MESSAGE_PROPERTY_CONFLICT_WITH_TYPE,
        )
    if mtype == _FIFO and not has_group:
        raise MqError("FIFO message without message_group", Code.ILLEGAL_MESSAGE_GROUP)
    return mtype


_UNSPECIFIED: Final = pb.MESSAGE_TYPE_UNSPECIFIED
_NORMAL: Final = pb.NORMAL
_FIFO: Final = pb.FIFO
_DELAY: Final = pb.DELAY
