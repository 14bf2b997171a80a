"""Pure conversions between protocol ``Message`` objects and store records.

* ``to_new_message``: a validated SendMessage entry -> ``store.NewMessage`` (validation lives in
  ``validation.py``; this only maps fields).
* ``to_delivered_message``: a ``store.StoredMessage`` -> the delivered ``definition_pb2.Message``
  (protocol doc §4.9), used by ReceiveMessage and by orphaned-transaction checks.

Identity: the id a producer gets back from SendMessage is the store's message id (it decodes to
node + commit-log offset, so it resolves without an index). The delivered message carries the
same id, so a sender and a consumer agree on it. The client-generated id is kept in the
``__UNIQ_KEY`` property for tracing. A message re-appended by the delivery engine (retry, DLQ,
timer, transaction commit) carries its first id in ``__ORIGIN_MSG_ID``, which wins.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp
from rocketmq.grpc_protocol import definition_pb2 as pb

from brokers.node.store.model import (
    PROP_DELIVERY_TIME_MS,
    PROP_DLQ_ORIGIN,
    PROP_MESSAGE_GROUP,
    PROP_ORIGIN_MSG_ID,
    PROP_ORIGIN_TOPIC,
    PROP_TRANSACTION_ID,
    MessageFlag,
    NewMessage,
    StoredMessage,
)

#: The producer-generated message id (5.x "v1" id), kept for tracing.
PROP_UNIQ_KEY: Final = "__UNIQ_KEY"
#: Upper-case hex MD5 of the body, computed once when the message is written (delivered as
#: ``body_digest``; absent on records written before it existed: then computed per delivery).
PROP_BODY_MD5: Final = "__BODY_MD5"
#: Namespace separator in stored topic names: ``<namespace>%<topic>``.
NS_SEP: Final = "%"


def stored_topic(namespace: str, topic: str) -> str:
    return f"{namespace}{NS_SEP}{topic}"


def split_stored_topic(stored: str) -> tuple[str, str]:
    """``"ns%T"`` -> ``("ns", "T")``; a name without separator has the empty namespace."""
    ns, sep, name = stored.partition(NS_SEP)
    return (ns, name) if sep else ("", stored)


def timestamp_to_ms(ts: Timestamp) -> int:
    """Protocol Timestamp -> epoch ms; tolerates the SDK putting milliseconds in ``seconds``
    (protocol doc G11)."""
    if ts.seconds > 10**11:
        return ts.seconds
    return ts.seconds * 1000 + ts.nanos // 1_000_000


_FIFO: Final = int(MessageFlag.FIFO)
_DELAY: Final = int(MessageFlag.DELAY)
_TRANSACTION: Final = int(MessageFlag.TRANSACTION_HALF | MessageFlag.TRANSACTION_COMMIT)
_TYPE_OF_FLAGS: dict[int, int] = {}


def message_type_of(flags: int) -> int:
    """The protocol message type of stored flags (cached per flags value: IntFlag ``&`` is
    slow, and this runs for every delivered message)."""
    t = _TYPE_OF_FLAGS.get(flags)
    if t is None:
        f = int(flags)
        if f & _FIFO:
            t = pb.FIFO
        elif f & _DELAY:
            t = pb.DELAY
        elif f & _TRANSACTION:
            t = pb.TRANSACTION
        else:
            t = pb.NORMAL
        if len(_TYPE_OF_FLAGS) < 1024:
            _TYPE_OF_FLAGS[flags] = t
    return t


_FLAGS_OF_TYPE: Final = {
    pb.NORMAL: int(MessageFlag.NORMAL),
    pb.FIFO: int(MessageFlag.FIFO),
    pb.DELAY: int(MessageFlag.DELAY),
    pb.TRANSACTION: int(MessageFlag.TRANSACTION_HALF),
}
_NORMAL_FLAGS: Final = int(MessageFlag.NORMAL)


def to_new_message(
    msg: pb.Message,
    *,
    stored_topic_name: str,
    queue_id: int,
    message_type: int,
    born_host_fallback: str,
    extra_properties: Mapping[str, str] | None = None,
) -> NewMessage:
    """Map a (validated) SendMessage entry to the store's append input (each field read once:
    this runs for every message sent)."""
    sp = msg.system_properties
    body = msg.body
    user = msg.user_properties
    props: dict[str, str] = dict(user) if user else {}
    message_id = sp.message_id
    if message_id:
        props[PROP_UNIQ_KEY] = message_id
    if sp.HasField("message_group"):
        props[PROP_MESSAGE_GROUP] = sp.message_group
    if sp.HasField("delivery_timestamp"):
        props[PROP_DELIVERY_TIME_MS] = str(timestamp_to_ms(sp.delivery_timestamp))
    if extra_properties:
        props.update(extra_properties)
    # Computed once here, not on every delivery (consumers verify it; the body never changes
    # after this point: timer/half/DLQ copies keep body and properties).
    props[PROP_BODY_MD5] = _md5(body).hexdigest().upper()
    keys = sp.keys
    # Positional, in NewMessage's field order. An absent optional tag reads as "" and an absent
    # born_timestamp as 0 s, so neither needs a HasField.
    return NewMessage(
        stored_topic_name, queue_id, body, sp.tag, tuple(keys) if keys else (), props,
        timestamp_to_ms(sp.born_timestamp), sp.born_host or born_host_fallback,
        _FLAGS_OF_TYPE.get(message_type, _NORMAL_FLAGS),
    )


_md5: Final = hashlib.md5


def body_digest(body: bytes | memoryview) -> pb.Digest:
    return pb.Digest(type=pb.MD5, checksum=hashlib.md5(body).hexdigest().upper())


def public_message_id(stored: StoredMessage) -> str:
    return stored.properties.get(PROP_ORIGIN_MSG_ID) or stored.msg_id


def to_delivered_message(
    stored: StoredMessage,
    *,
    receipt_handle: str,
    delivery_attempt: int,
    invisible_duration_s: float | None = None,
    store_host: str = "",
) -> pb.Message:
    """The delivered form of a stored message (protocol doc §4.9). Pure; no I/O.

    The topic is reported bare, in its namespace: the origin topic for retry/DLQ copies.
    Built by setting fields in place (about 40% cheaper than nested keyword arguments; this
    runs for every delivered message).
    """
    props = stored.properties
    namespace, topic = split_stored_topic(props.get(PROP_ORIGIN_TOPIC) or stored.topic)
    body = bytes(stored.body)
    md5 = props.get(PROP_BODY_MD5) or hashlib.md5(body).hexdigest().upper()
    m = pb.Message(body=body)
    resource = m.topic
    resource.resource_namespace = namespace
    resource.name = topic
    sp = m.system_properties
    sp.message_id = props.get(PROP_ORIGIN_MSG_ID) or stored.msg_id
    digest = sp.body_digest
    digest.type = _MD5
    digest.checksum = md5
    sp.body_encoding = _IDENTITY
    sp.message_type = message_type_of(stored.flags)
    born, stored_ms = stored.born_timestamp_ms, stored.store_timestamp_ms
    ts = sp.born_timestamp
    ts.seconds, ts.nanos = born // 1000, born % 1000 * 1_000_000
    ts = sp.store_timestamp
    ts.seconds, ts.nanos = stored_ms // 1000, stored_ms % 1000 * 1_000_000
    sp.born_host = stored.born_host
    sp.store_host = store_host
    sp.queue_id = stored.queue_id
    sp.queue_offset = stored.queue_offset
    sp.receipt_handle = receipt_handle
    sp.delivery_attempt = max(1, delivery_attempt)
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
        dlq = sp.dead_letter_queue
        dlq.topic = props[PROP_DLQ_ORIGIN]
        dlq.message_id = public_message_id(stored)
    user = m.user_properties
    for k, v in props.items():
        if not k.startswith("__"):
            user[k] = v
    return m


_MD5: Final = pb.MD5
_IDENTITY: Final = pb.IDENTITY


def transaction_id_of(stored: StoredMessage) -> str:
    return stored.properties.get(PROP_TRANSACTION_ID) or public_message_id(stored)


# --------------------------------------------------------------------------- wire frames
# ReceiveMessage writes one frame per delivered message (protocol §4.8): the handler yields the
# serialized ``ReceiveMessageResponse`` itself (grpc's serializer is skipped, servicer.py), so a
# delivered message is serialized once and wrapped by prefixing the oneof field's tag and length
# instead of being copied into a response object first.


def _varint(n: int) -> bytes:
    if n < 0x4000:  # every frame up to 16 KiB: one or two bytes
        return bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7))
    if n < 0x10000000:  # queue offsets and frames up to 256 MiB: three or four bytes, no loop
        if n < 0x200000:
            return bytes(((n & 0x7F) | 0x80, (n >> 7 & 0x7F) | 0x80, n >> 14))
        return bytes(((n & 0x7F) | 0x80, (n >> 7 & 0x7F) | 0x80, (n >> 14 & 0x7F) | 0x80,
                      n >> 21))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(tag: bytes, data: bytes) -> bytes:
    """A length-delimited protobuf field: ``tag`` (its key byte), the length, ``data``."""
    return tag + _varint(len(data)) + data


def response_message_frame(message_bytes: bytes) -> bytes:
    """``ReceiveMessageResponse{message}`` (field 2) around a serialized ``Message``."""
    return b"\x12" + _varint(len(message_bytes)) + message_bytes


def delivered_frame(
    stored: StoredMessage,
    *,
    receipt_handle: str,
    delivery_attempt: int,
    invisible_duration_s: float | None = None,
) -> bytes:
    """Serialized ``ReceiveMessageResponse{message: to_delivered_message(...)}``."""
    return response_message_frame(to_delivered_message(
        stored, receipt_handle=receipt_handle, delivery_attempt=delivery_attempt,
        invisible_duration_s=invisible_duration_s,
    ).SerializeToString())
