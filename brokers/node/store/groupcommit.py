"""Pipelined group commit for ``sync`` durability: the fdatasync runs on its own thread.

The writer thread encodes and writes a chunk, then hands it here and goes on with the next
requests while this thread ``fdatasync``s: the writer's CPU (and the event loop's) overlaps the
disk flush instead of alternating with it (RocketMQ's ``GroupCommitService`` does the same).
One ``fdatasync`` covers every chunk handed over before it started; chunks are then published
(queue ``max_offset``, ``committed_pos``) in order and their requests resolved, all with one
``call_soon_threadsafe``. Nothing is visible to readers or acknowledged before its fsync.

Items handed over, in the writer's order, each tagged: ``(CHUNK, chunk)`` (written, to be synced
and published), ``(PAIRS, [(future, results), ...])`` (a finished batch, resolved once every chunk
before it is published) and ``(BARRIER, threading.Event)`` (set once everything before it is done).

A failed ``fdatasync`` is not handled here: this thread parks that item and every later one,
tells the writer (``on_failure``) and waits. The writer owns the write position and queue
offsets, so it rolls back (``AppendWriter._sync_failed``) after a ``barrier``, taking the parked
items with ``take_failure``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Final

from .config import FileOps

_STOP: Final = object()
log = logging.getLogger(__name__)
CHUNK: Final = 0
PAIRS: Final = 1
BARRIER: Final = 2


class GroupCommit:
    def __init__(self, ops: FileOps, loop: asyncio.AbstractEventLoop,
                 publish: Callable[[Any], None], resolve: Callable[[list[Any]], None],
                 on_failure: Callable[[], None]) -> None:
        self.ops = ops
        self.loop = loop
        self.publish = publish  # called with each synced chunk, in order, on this thread
        self.resolve = resolve  # called on the event loop with the pairs of resolved batches
        self.on_failure = on_failure
        self.todo: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # True while nothing handed over is pending: the writer then starts the next fsync as
        # early as it can (one request) rather than draining everything first. A hint only.
        self.idle = True
        self.failure: OSError | None = None
        self.parked: list[Any] = []
        self.syncs = 0
        self._thread = threading.Thread(target=self._run, name="store-groupcommit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put_chunk(self, chunk: Any) -> None:
        self.idle = False
        self.todo.put((CHUNK, chunk))

    def put_pairs(self, pairs: list[Any]) -> None:
        self.todo.put((PAIRS, pairs))

    def barrier(self) -> bool:
        """Wait until everything handed over so far is synced and published (or parked after a
        failure); return whether a failure is pending (see ``take_failure``)."""
        done = threading.Event()
        self.todo.put((BARRIER, done))
        done.wait()
        return self.failure is not None

    def take_failure(self) -> tuple[OSError | None, list[Any]]:
        """After ``barrier``: the pending failure and the parked items; resets both."""
        exc, items = self.failure, self.parked
        self.failure, self.parked = None, []
        return exc, items

    def stop(self) -> None:
        self.todo.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        todo = self.todo
        while True:
            items = [todo.get()]
            while True:
                try:
                    items.append(todo.get_nowait())
                except queue.Empty:
                    break
            stop = items[-1] is _STOP
            if stop:
                items.pop()  # the writer stops only after its last barrier: nothing follows
            try:
                self._handle(items)
            except Exception:  # a bug (or a closed loop): keep the barriers working
                log.exception("store group commit failed a round")
                for kind, obj in items:
                    if kind == BARRIER:
                        obj.set()
            if todo.empty():
                self.idle = True
            if stop:
                return

    def _handle(self, items: list[tuple[int, Any]]) -> None:
        chunks = [obj for kind, obj in items if kind == CHUNK]
        if self.failure is None and chunks:
            try:
                for fd in dict.fromkeys(c.seg.fd for c in chunks):  # one segment, in practice
                    self.ops.fdatasync(fd)
                self.syncs += 1
            except OSError as exc:
                self.failure = exc
                self.on_failure()
        if self.failure is not None:
            self.parked.extend(item for item in items if item[0] != BARRIER)
        else:
            for chunk in chunks:
                self.publish(chunk)
            pairs = [pair for kind, obj in items if kind == PAIRS for pair in obj]
            if pairs:
                self.loop.call_soon_threadsafe(self.resolve, pairs)
        for kind, obj in items:
            if kind == BARRIER:
                obj.set()
