"""Recall handles of delay messages (protocol doc §4.6).

A DELAY send returns ``recall_handle`` in its SendResultEntry; ``Producer.recall_message(topic,
handle)`` hands it back to cancel the message before it becomes visible. Like Apache RocketMQ's
(base64url of "v1 topic broker timestamp msgId"), ours is URL-safe base64 text, of
``"r1 <timer id> <message id>"``: the timer id finds the pending timer, and the message id (the
one the producer got) must match the held copy, so a handle cannot be guessed from a counter.
The namespace and topic come from the authenticated request, never from the handle: a handle
only works on a topic of the caller's own namespace that the caller may publish to.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Final

_VERSION: Final = "r1"
_MAX_HANDLE_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class RecallHandle:
    timer_id: int
    message_id: str


def encode_recall_handle(timer_id: int, message_id: str) -> str:
    raw = f"{_VERSION} {timer_id} {message_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_recall_handle(handle: str) -> RecallHandle | None:
    """The handle's fields, or None when it is not one of ours (any malformed input)."""
    if not handle or len(handle) > _MAX_HANDLE_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(handle + "=" * (-len(handle) % 4)).decode()
    except (binascii.Error, ValueError):
        return None
    parts = raw.split(" ")
    if (len(parts) != 3 or parts[0] != _VERSION or not (parts[1].isascii() and parts[1].isdigit())
            or not parts[2]):
        return None
    return RecallHandle(int(parts[1]), parts[2])
