"""Message ids that locate their message: hex of (node id, commit-log offset).

Layout (12 bytes, big-endian, printed as 24 upper-case hex digits): node_id u32 | offset u64.
Decoding an id is enough to find the record, so no id index is needed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from .errors import InvalidMessageIdError

_ID: Final = struct.Struct(">IQ")
ID_HEX_LENGTH: Final = _ID.size * 2


@dataclass(frozen=True, slots=True)
class MessageId:
    node_id: int
    commitlog_offset: int

    def __str__(self) -> str:
        return encode_message_id(self.node_id, self.commitlog_offset)


def encode_message_id(node_id: int, commitlog_offset: int) -> str:
    return f"{node_id:08X}{commitlog_offset:016X}"


def decode_message_id(msg_id: str) -> MessageId:
    """Decode an id made by :func:`encode_message_id`; raises InvalidMessageIdError otherwise."""
    if len(msg_id) != ID_HEX_LENGTH:
        raise InvalidMessageIdError(f"message id must be {ID_HEX_LENGTH} hex digits")
    try:
        node_id, offset = _ID.unpack(bytes.fromhex(msg_id))
    except ValueError as exc:
        raise InvalidMessageIdError(f"message id {msg_id!r} is not hex") from exc
    return MessageId(node_id, offset)
