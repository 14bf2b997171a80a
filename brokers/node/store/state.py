"""StateStore: small state a restart must not lose, in SQLite (WAL) behind one writer thread.

Holds consumer-group offsets, in-flight receipt batches, delayed-message timers and transaction
half messages. Reads are served from memory (the rows are few compared with the message backlog:
one per group/queue, per received batch, per pending delayed or half message). Every mutation
updates memory at once (read-your-writes on the event loop) and queues its SQL; the writer
thread runs everything queued in ONE transaction and commits, then resolves the awaitables of
that transaction together (batched commits). ``synchronous=FULL`` when the node is in ``sync``
durability (a resolved write survives power loss), ``NORMAL`` otherwise (survives a process
kill; WAL never corrupts).

Why SQLite: stdlib, transactional multi-row updates (ack + offset), crash-safe WAL, indexes, and
small rows that change in place, which an append-only log would have to compact.
"""

from __future__ import annotations

import asyncio
import json
import queue
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

_STOP: Final = object()

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS consumer_offset (
    grp TEXT NOT NULL, topic TEXT NOT NULL, queue_id INTEGER NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, queue_id));
CREATE TABLE IF NOT EXISTS inflight (
    batch_id TEXT PRIMARY KEY, grp TEXT NOT NULL, topic TEXT NOT NULL, queue_id INTEGER NOT NULL,
    queue_offsets TEXT NOT NULL, commitlog_offsets TEXT NOT NULL,
    invisible_until_ms INTEGER NOT NULL, acked TEXT NOT NULL, attempt INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS timer (
    commitlog_offset INTEGER PRIMARY KEY, due_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS txn_half (
    txn_id TEXT PRIMARY KEY, commitlog_offset INTEGER NOT NULL, producer_group TEXT NOT NULL,
    topic TEXT NOT NULL, created_ms INTEGER NOT NULL);
"""

Op = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True)
class InflightBatch:
    """One received batch ("pop checkpoint"): entries invisible until ``invisible_until_ms``."""

    batch_id: str
    group: str
    topic: str
    queue_id: int
    queue_offsets: tuple[int, ...]
    commitlog_offsets: tuple[int, ...]
    invisible_until_ms: int
    acked: frozenset[int] = field(default_factory=frozenset)
    attempt: int = 1

    def pending(self) -> list[int]:
        """Indexes of entries not acked yet."""
        return [i for i in range(len(self.queue_offsets)) if i not in self.acked]


@dataclass(frozen=True)
class Timer:
    commitlog_offset: int
    due_ms: int


@dataclass(frozen=True)
class HalfMessage:
    txn_id: str
    commitlog_offset: int
    producer_group: str
    topic: str
    created_ms: int


class StateStore:
    """See module docstring. Methods are for the event loop thread; ``await`` the writes."""

    def __init__(self, path: Path, durable: bool, clock_ms: Callable[[], int],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.path = path
        self.durable = durable
        self.clock_ms = clock_ms
        self._loop = loop
        self._offsets: dict[tuple[str, str, int], int] = {}
        self._inflight: dict[str, InflightBatch] = {}
        self._timers: dict[int, int] = {}
        self._halves: dict[str, HalfMessage] = {}
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-state", daemon=True)
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self.commits = 0

    @classmethod
    async def open(cls, path: Path, durable: bool, clock_ms: Callable[[], int]) -> StateStore:
        st = cls(path, durable, clock_ms, asyncio.get_running_loop())
        await asyncio.to_thread(st._load)
        st._thread.start()
        return st

    def _load(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
        db.executescript(_SCHEMA)
        for g, t, q, o in db.execute("SELECT grp, topic, queue_id, offset FROM consumer_offset"):
            self._offsets[(g, t, q)] = o
        for row in db.execute("SELECT * FROM inflight"):
            b = InflightBatch(row[0], row[1], row[2], row[3], tuple(json.loads(row[4])),
                              tuple(json.loads(row[5])), row[6], frozenset(json.loads(row[7])), row[8])
            self._inflight[b.batch_id] = b
        for off, due in db.execute("SELECT commitlog_offset, due_ms FROM timer"):
            self._timers[off] = due
        for row in db.execute("SELECT txn_id, commitlog_offset, producer_group, topic, created_ms FROM txn_half"):
            self._halves[row[0]] = HalfMessage(*row)
        self._db = db

    # -- the writer thread -----------------------------------------------------------------------
    def _submit(self, ops: list[Op]) -> asyncio.Future[None]:
        if self._closed:
            raise RuntimeError("state store is closed")
        fut: asyncio.Future[None] = self._loop.create_future()
        self._queue.put((ops, fut))
        return fut

    def _run(self) -> None:
        db = self._db
        assert db is not None
        while True:
            items = [self._queue.get()]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(it is _STOP for it in items)
            work = [it for it in items if it is not _STOP]
            error: BaseException | None = None
            if work:
                try:
                    db.execute("BEGIN")
                    for ops, _fut in work:
                        for sql, params in ops:
                            db.execute(sql, params)
                    db.execute("COMMIT")
                    self.commits += 1
                except sqlite3.Error as exc:
                    error = exc
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                self._loop.call_soon_threadsafe(_settle, [fut for _ops, fut in work], error)
            if stop:
                db.close()
                return

    async def close(self) -> None:
        """Wait for queued writes, then close the database."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    # -- consumer offsets ------------------------------------------------------------------------
    async def commit_offset(self, group: str, topic: str, queue_id: int, offset: int) -> None:
        self._offsets[(group, topic, queue_id)] = offset
        await self._submit([("INSERT OR REPLACE INTO consumer_offset VALUES (?, ?, ?, ?)",
                             (group, topic, queue_id, offset))])

    def get_offset(self, group: str, topic: str, queue_id: int) -> int | None:
        return self._offsets.get((group, topic, queue_id))

    # -- in-flight receipts ----------------------------------------------------------------------
    @staticmethod
    def new_batch_id() -> str:
        return uuid.uuid4().hex

    async def put_inflight(self, batch: InflightBatch) -> None:
        if len(batch.queue_offsets) != len(batch.commitlog_offsets):
            raise ValueError("queue_offsets and commitlog_offsets differ in length")
        self._inflight[batch.batch_id] = batch
        await self._submit([_upsert_batch(batch)])

    def get_inflight(self, batch_id: str) -> InflightBatch | None:
        return self._inflight.get(batch_id)

    async def ack(self, batch_id: str, index: int) -> bool:
        """Mark entry ``index`` acked; the batch row goes when all are. False if unknown/acked."""
        b = self._inflight.get(batch_id)
        if b is None or index in b.acked or not 0 <= index < len(b.queue_offsets):
            return False
        await self._submit(self._mark_acked(b, index))
        return True

    def _mark_acked(self, b: InflightBatch, index: int) -> list[Op]:
        nb = replace(b, acked=b.acked | {index})
        if len(nb.acked) == len(nb.queue_offsets):
            del self._inflight[b.batch_id]
            return [("DELETE FROM inflight WHERE batch_id = ?", (b.batch_id,))]
        self._inflight[b.batch_id] = nb
        return [_upsert_batch(nb)]

    async def change_invisible(self, batch_id: str, index: int, invisible_until_ms: int) -> str | None:
        """Move entry ``index`` into a new one-entry batch with a new deadline; return its id
        (None if the entry is unknown or already acked). Old and new rows change atomically."""
        b = self._inflight.get(batch_id)
        if b is None or index in b.acked or not 0 <= index < len(b.queue_offsets):
            return None
        moved = InflightBatch(self.new_batch_id(), b.group, b.topic, b.queue_id,
                              (b.queue_offsets[index],), (b.commitlog_offsets[index],),
                              invisible_until_ms, frozenset(), b.attempt)
        ops = self._mark_acked(b, index)
        self._inflight[moved.batch_id] = moved
        ops.append(_upsert_batch(moved))
        await self._submit(ops)
        return moved.batch_id

    def due_inflight(self, now_ms: int) -> list[InflightBatch]:
        """Batches whose invisibility expired and that still have unacked entries."""
        return sorted((b for b in self._inflight.values() if b.invisible_until_ms <= now_ms),
                      key=lambda b: b.invisible_until_ms)

    # -- timers ----------------------------------------------------------------------------------
    async def schedule_timer(self, commitlog_offset: int, due_ms: int) -> None:
        self._timers[commitlog_offset] = due_ms
        await self._submit([("INSERT OR REPLACE INTO timer VALUES (?, ?)", (commitlog_offset, due_ms))])

    def due_timers(self, now_ms: int, limit: int | None = None) -> list[Timer]:
        """Timers due at or before ``now_ms``, earliest first."""
        due = sorted((d, o) for o, d in self._timers.items() if d <= now_ms)
        return [Timer(o, d) for d, o in due[:limit]]

    async def remove_timer(self, commitlog_offset: int) -> None:
        self._timers.pop(commitlog_offset, None)
        await self._submit([("DELETE FROM timer WHERE commitlog_offset = ?", (commitlog_offset,))])

    # -- transactions ----------------------------------------------------------------------------
    async def put_half(self, txn_id: str, commitlog_offset: int, producer_group: str,
                       topic: str = "", created_ms: int | None = None) -> None:
        h = HalfMessage(txn_id, commitlog_offset, producer_group, topic,
                        self.clock_ms() if created_ms is None else created_ms)
        self._halves[txn_id] = h
        await self._submit([("INSERT OR REPLACE INTO txn_half VALUES (?, ?, ?, ?, ?)",
                             (h.txn_id, h.commitlog_offset, h.producer_group, h.topic, h.created_ms))])

    async def resolve_half(self, txn_id: str) -> HalfMessage | None:
        """Forget the half message (committed or rolled back); return it, None if unknown."""
        h = self._halves.pop(txn_id, None)
        if h is not None:
            await self._submit([("DELETE FROM txn_half WHERE txn_id = ?", (txn_id,))])
        return h

    def unresolved_halves(self, older_than_ms: int) -> list[HalfMessage]:
        return sorted((h for h in self._halves.values() if h.created_ms <= older_than_ms),
                      key=lambda h: h.created_ms)

    # -- retention -------------------------------------------------------------------------------
    def pins(self) -> int | None:
        """Smallest commit-log offset still needed by a timer, half message or unacked receipt."""
        candidates: Iterable[int] = [
            min(self._timers, default=None),
            min((h.commitlog_offset for h in self._halves.values()), default=None),
            min((b.commitlog_offsets[i] for b in self._inflight.values() for i in b.pending()),
                default=None),
        ]
        present = [c for c in candidates if c is not None]
        return min(present) if present else None


def _upsert_batch(b: InflightBatch) -> Op:
    return ("INSERT OR REPLACE INTO inflight VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (b.batch_id, b.group, b.topic, b.queue_id, json.dumps(b.queue_offsets),
             json.dumps(b.commitlog_offsets), b.invisible_until_ms, json.dumps(sorted(b.acked)),
             b.attempt))


def _settle(futs: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in futs:
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)
