"""In-memory consumption state: cursors (one per group/topic/queue[/client]) and batches.

A **cursor** owns ``nxt`` (the read frontier: everything below it was looked at) and the
*pending* entries below it (delivered, not yet acked or dead-lettered). Its committed offset
``base`` is the smallest pending offset, or ``nxt`` when nothing is pending, so the offset
advances exactly when all earlier entries are acked (filtered-out entries are never pending).

A **batch** is what one receive handed out from one cursor: queue offsets, the delivery attempt
of each, one deadline, and a ``resolved`` bitmask (acked, dead-lettered or superseded by a later
delivery). It is the unit of durable state (one row), so a 32-message receive costs one write.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from brokers.node.delivery.state import CursorKey


@dataclass(eq=False, slots=True)
class Batch:
    id: int
    key: CursorKey
    client: str
    offsets: list[int]
    attempts: list[int]
    resolved: int
    deadline: int
    auto_renew: bool
    created: int
    max_attempts: int
    #: In memory only: entries superseded by change_invisible / redelivery (their handle is dead).
    moved: int = 0
    #: Deadline passed and the expiry pass handled it (entries are now ready or in the DLQ).
    expired: bool = False

    def unresolved(self) -> Iterator[int]:
        for i in range(len(self.offsets)):
            if not self.resolved >> i & 1:
                yield i

    @property
    def done(self) -> bool:
        return self.resolved == (1 << len(self.offsets)) - 1


@dataclass(eq=False, slots=True)
class Cursor:
    key: CursorKey
    nxt: int
    pending: dict[int, tuple[Batch, int]] = field(default_factory=dict)
    #: Pending offsets whose invisibility ran out: deliver these first (min-heap).
    ready: list[int] = field(default_factory=list)
    ready_set: set[int] = field(default_factory=set)
    _heap: list[int] = field(default_factory=list)
    #: A receive is reading this cursor right now (others skip it instead of double-reading).
    busy: bool = False
    committed: int = -1
    #: Set when ``busy`` ends; created only when a receive waits for this cursor.
    _idle: asyncio.Event | None = None
    #: Read-ahead (engine ``_take_new``): messages from ``nxt`` on, read but not yet taken; the
    #: store read's next offset and max offset; when it was read (time.monotonic()).
    ahead: list[Any] | None = None
    ahead_end: int = 0
    ahead_hi: int = 0
    ahead_at: float = 0.0

    def idle_event(self) -> asyncio.Event:
        if self._idle is None:
            self._idle = asyncio.Event()
        return self._idle

    def release(self) -> None:
        """End a receive's read of this cursor and wake receives that skipped it."""
        self.busy = False
        if self._idle is not None:
            self._idle.set()
            self._idle = None

    @property
    def base(self) -> int:
        heap, pending = self._heap, self.pending
        while heap and heap[0] not in pending:
            heapq.heappop(heap)
        return heap[0] if heap else self.nxt

    @property
    def inflight_count(self) -> int:
        return len(self.pending) - len(self.ready_set)

    def add_pending(self, offset: int, batch: Batch, index: int) -> None:
        if offset not in self.pending:
            heapq.heappush(self._heap, offset)
        self.pending[offset] = (batch, index)

    def add_pending_batch(self, batch: Batch) -> None:
        """``add_pending(offset, batch, i)`` for every entry of a new batch."""
        pending, heap = self.pending, self._heap
        push = heapq.heappush
        for i, offset in enumerate(batch.offsets):
            if offset not in pending:
                push(heap, offset)
            pending[offset] = (batch, i)

    def remove_pending(self, offset: int) -> None:
        self.pending.pop(offset, None)
        self.ready_set.discard(offset)

    def make_ready(self, offset: int) -> None:
        if offset in self.pending and offset not in self.ready_set:
            self.ready_set.add(offset)
            heapq.heappush(self.ready, offset)

    def pop_ready(self) -> int | None:
        while self.ready:
            offset = heapq.heappop(self.ready)
            if offset in self.ready_set:
                self.ready_set.discard(offset)
                return offset
        return None

    def peek_ready(self) -> bool:
        while self.ready and self.ready[0] not in self.ready_set:
            heapq.heappop(self.ready)
        return bool(self.ready)
