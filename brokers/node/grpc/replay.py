"""Receive replay for FIFO groups: a ReceiveMessage repeated with the same ``attempt_id``.

The PushConsumer reuses a receive's ``attempt_id`` when the previous attempt failed (timeout,
lost connection) and takes a new one after a success (protocol doc §4.8, §5.3). If the reply
with the messages was lost, those messages are in flight for a client that never saw them, and a
FIFO group's message groups stay locked until their invisibility runs out (for the PushConsumer,
auto-renewed: minutes). Like the RocketMQ proxy, the node therefore hands the same in-flight
messages back, same receipt handles, when the same attempt arrives again.

Only FIFO groups are remembered (elsewhere a lost reply only delays those messages until they
become visible again), for at most ``ttl`` and within a bounded number of entries and bytes.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

ReplayKey = tuple[str, str, str, str, str]  # namespace, group, stored topic, client id, attempt id

MAX_ENTRIES: Final = 1024
MAX_BYTES: Final = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Reply:
    frames: tuple[bytes, ...]
    handles: tuple[str, ...]
    expires: float
    size: int


class ReceiveReplay:
    """``remember`` what a receive handed out; ``recall`` it for a repeated attempt."""

    def __init__(self, *, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._replies: OrderedDict[ReplayKey, _Reply] = OrderedDict()
        self._bytes = 0
        self._max_entries, self._max_bytes, self._clock = max_entries, max_bytes, clock

    def __len__(self) -> int:
        return len(self._replies)

    def remember(self, key: ReplayKey, frames: list[bytes], handles: list[str], ttl_s: float) -> None:
        """Keep the frames of one receive (one per message, parallel to ``handles``)."""
        self._drop(key)
        reply = _Reply(tuple(frames), tuple(handles), self._clock() + ttl_s, sum(map(len, frames)))
        if reply.size > self._max_bytes:
            return
        self._replies[key] = reply
        self._bytes += reply.size
        while len(self._replies) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._replies)))

    def recall(self, key: ReplayKey, live: Callable[[list[str]], list[bool]]) -> list[bytes]:
        """The frames of the remembered receive whose handles ``live`` still reports in flight
        (empty when nothing is remembered, it expired, or everything was acked since)."""
        reply = self._replies.get(key)
        if reply is None:
            return []
        if self._clock() >= reply.expires:
            self._drop(key)
            return []
        alive = live(list(reply.handles))
        frames = [f for f, ok in zip(reply.frames, alive, strict=True) if ok]
        if not frames:
            self._drop(key)
        return frames

    def _drop(self, key: ReplayKey) -> None:
        reply = self._replies.pop(key, None)
        if reply is not None:
            self._bytes -= reply.size
