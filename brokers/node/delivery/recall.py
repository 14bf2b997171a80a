"""Recall handles of delay messages: opaque strings that name one pending timer and cannot be
forged (protocol doc §4.6).

A DELAY send returns one in its SendResultEntry; ``Producer.recall_message(topic, handle)``
hands it back to cancel the message before it becomes visible. Like Apache RocketMQ's (base64url
of "v1 topic broker timestamp msgId"), ours is URL-safe base64 text::

    r1 <timer id> <message id> <mac>

``mac`` = first 10 bytes (hex) of keyed BLAKE2b(node secret, "recall|<stored topic>|<timer
id>|<message id>"): the stored topic carries the namespace, so a handle presented on another
topic or by another tenant fails verification without any lookup, and handles cannot be made up
from the (sequential) timer ids. The secret is the receipt-handle secret of the node.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Final

_VERSION: Final = "r1"
_MAC_BYTES: Final = 10
_MAX_HANDLE_CHARS: Final = 512


@dataclass(frozen=True, slots=True)
class RecallTarget:
    """What a verified handle names."""

    timer_id: int
    message_id: str


class RecallHandles:
    """Issues and verifies recall handles with one node secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("recall secret must be at least 16 bytes")
        self._key = secret[:64]

    def _mac(self, stored_topic: str, timer_id: int, message_id: str) -> str:
        data = f"recall|{stored_topic}|{timer_id}|{message_id}".encode()
        return hashlib.blake2b(data, key=self._key, digest_size=_MAC_BYTES).hexdigest()

    def issue(self, stored_topic: str, timer_id: int, message_id: str) -> str:
        mac = self._mac(stored_topic, timer_id, message_id)
        raw = f"{_VERSION} {timer_id} {message_id} {mac}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def verify(self, stored_topic: str, handle: str) -> RecallTarget | None:
        """What ``handle`` names if this node issued it for ``stored_topic``, else None (any
        malformed, forged or foreign handle)."""
        if not handle or len(handle) > _MAX_HANDLE_CHARS:
            return None
        try:
            raw = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4)).decode()
        except (binascii.Error, ValueError):
            return None
        parts = raw.split(" ")
        if len(parts) != 4 or parts[0] != _VERSION:
            return None
        _, timer, message_id, mac = parts
        if not (timer.isascii() and timer.isdigit()) or not message_id:
            return None
        if not hmac.compare_digest(mac, self._mac(stored_topic, int(timer), message_id)):
            return None
        return RecallTarget(int(timer), message_id)
