"""Durable delivery state: cursors, in-flight batches, timers, half messages (SQLite, WAL).

Why not ``store.state``: the engine needs a read frontier per cursor, per-entry delivery
attempts, broadcast cursors per client and transaction check counters, which the store's small
state API does not model; keeping them here keeps the seam narrow (docs/delivery.md).

Write model: callers change in-memory objects and mark them dirty; ``flush`` snapshots every
dirty row on the event loop (so the snapshot is consistent) and writes it in one transaction in
a worker thread. Acks and offsets are flushed every ``state_flush_ms`` (losing the last few ms
on a crash only causes redelivery: at-least-once); timers and half messages are awaited.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from array import array
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CursorKey = tuple[str, str, int, str]  # (group, topic, queue id, consumer: "" or client id)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS cursor (
    grp TEXT NOT NULL, topic TEXT NOT NULL, qid INTEGER NOT NULL, consumer TEXT NOT NULL,
    base INTEGER NOT NULL, nxt INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, qid, consumer));
CREATE TABLE IF NOT EXISTS batch (
    id INTEGER PRIMARY KEY, grp TEXT NOT NULL, topic TEXT NOT NULL, qid INTEGER NOT NULL,
    consumer TEXT NOT NULL, client TEXT NOT NULL, offsets BLOB NOT NULL, attempts BLOB NOT NULL,
    resolved BLOB NOT NULL, deadline INTEGER NOT NULL, auto_renew INTEGER NOT NULL,
    created INTEGER NOT NULL, max_attempts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS timer (
    id INTEGER PRIMARY KEY, topic TEXT NOT NULL, qid INTEGER NOT NULL, qoff INTEGER NOT NULL,
    due INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS half (
    txn TEXT PRIMARY KEY, topic TEXT NOT NULL, qid INTEGER NOT NULL, qoff INTEGER NOT NULL,
    real_topic TEXT NOT NULL, producer_group TEXT NOT NULL, client TEXT NOT NULL,
    created INTEGER NOT NULL, checks INTEGER NOT NULL, next_check INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class BatchRow:
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


@dataclass(slots=True)
class TimerRow:
    id: int
    topic: str  # timer topic
    qid: int
    qoff: int
    due: int


@dataclass(slots=True)
class HalfRow:
    txn: str
    topic: str  # half topic
    qid: int
    qoff: int
    real_topic: str
    producer_group: str
    client: str
    created: int
    checks: int
    next_check: int


@dataclass(frozen=True)
class Loaded:
    secret: bytes
    cursors: dict[CursorKey, tuple[int, int]]
    batches: list[BatchRow]
    timers: list[TimerRow]
    halves: list[HalfRow]


class DeliveryState:
    """The SQLite file. Only ``flush`` touches the database after ``load``; one flush at a time."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._cursors: dict[CursorKey, Any] = {}  # (base, nxt), a live cursor, or None (delete)
        self._batches: dict[int, Any] = {}  # None = delete
        self._timers: dict[int, TimerRow | None] = {}
        self._halves: dict[str, HalfRow | None] = {}
        #: Ids of batch rows in the database. A batch created and finished between two flushes
        #: (the common receive-then-ack case) is then never written: no INSERT, no DELETE.
        self._on_disk: set[int] = set()

    # ------------------------------------------------------------------ load / close
    async def load(self) -> Loaded:
        return await asyncio.to_thread(self._load)

    def _load(self) -> Loaded:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        self._db = db
        row = db.execute("SELECT v FROM meta WHERE k='receipt_secret'").fetchone()
        if row is None:
            secret = os.urandom(32)
            db.execute("INSERT INTO meta VALUES ('receipt_secret', ?)", (secret,))
        else:
            secret = bytes(row[0])
        cursors = {
            (g, t, q, c): (b, n)
            for g, t, q, c, b, n in db.execute("SELECT grp, topic, qid, consumer, base, nxt FROM cursor")
        }
        batches = [
            BatchRow(id=r[0], key=(r[1], r[2], r[3], r[4]), client=r[5],
                     offsets=array("q", r[6]).tolist(), attempts=array("i", r[7]).tolist(),
                     resolved=int.from_bytes(r[8], "little"), deadline=r[9],
                     auto_renew=bool(r[10]), created=r[11], max_attempts=r[12])
            for r in db.execute("SELECT * FROM batch ORDER BY id")
        ]
        self._on_disk = {b.id for b in batches}
        timers = [TimerRow(*r) for r in db.execute("SELECT id, topic, qid, qoff, due FROM timer")]
        halves = [HalfRow(*r) for r in db.execute(
            "SELECT txn, topic, qid, qoff, real_topic, producer_group, client, created, checks,"
            " next_check FROM half")]
        return Loaded(secret, cursors, batches, timers, halves)

    async def close(self) -> None:
        await self.flush()
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.to_thread(db.close)

    # ------------------------------------------------------------------ dirty marks
    def put_cursor(self, key: CursorKey, base: int, nxt: int) -> None:
        self._cursors[key] = (base, nxt)

    def delete_cursor(self, key: CursorKey) -> None:
        self._cursors[key] = None

    def touch_cursor(self, cursor: Any) -> None:
        """Mark a live cursor (``.key``, ``.base``, ``.nxt``) dirty: its offsets are read at the
        next flush's snapshot, so an ack costs a dict store, not a ``base`` computation."""
        self._cursors[cursor.key] = cursor

    def put_batch(self, row: BatchRow | Any) -> None:
        """``row`` may be the live in-memory batch: it is serialised at the next flush."""
        self._batches[row.id] = row

    def delete_batch(self, batch_id: int) -> None:
        self._batches[batch_id] = None

    def put_timer(self, row: TimerRow) -> None:
        self._timers[row.id] = row

    def delete_timer(self, timer_id: int) -> None:
        self._timers[timer_id] = None

    def put_half(self, row: HalfRow) -> None:
        self._halves[row.txn] = row

    def delete_half(self, txn: str) -> None:
        self._halves[txn] = None

    @property
    def dirty(self) -> bool:
        return bool(self._cursors or self._batches or self._timers or self._halves)

    # ------------------------------------------------------------------ flush
    async def flush(self) -> None:
        """Write everything marked dirty so far; returns once it is committed."""
        async with self._lock:
            if not self.dirty or self._db is None:
                return
            snapshot = self._snapshot()
            await asyncio.to_thread(self._write, snapshot)

    def _snapshot(self) -> dict[str, list[Any]]:
        snap: dict[str, list[Any]] = {
            "cursor": [(*k, *(v if type(v) is tuple else (v.base, v.nxt)))
                       for k, v in self._cursors.items() if v is not None],
            "cursor_del": [k for k, v in self._cursors.items() if v is None],
            "batch_put": [], "batch_del": [], "timer_put": [], "timer_del": [],
            "half_put": [], "half_del": [],
        }
        on_disk = self._on_disk
        for bid, row in self._batches.items():
            if row is None:
                if bid in on_disk:
                    on_disk.discard(bid)
                    snap["batch_del"].append((bid,))
            else:
                on_disk.add(bid)
                nbytes = max(1, (len(row.offsets) + 7) // 8)
                snap["batch_put"].append((
                    row.id, *row.key, row.client, array("q", row.offsets).tobytes(),
                    array("i", row.attempts).tobytes(), row.resolved.to_bytes(nbytes, "little"),
                    row.deadline, int(row.auto_renew), row.created, row.max_attempts))
        for tid, t in self._timers.items():
            if t is None:
                snap["timer_del"].append((tid,))
            else:
                snap["timer_put"].append((t.id, t.topic, t.qid, t.qoff, t.due))
        for txn, h in self._halves.items():
            if h is None:
                snap["half_del"].append((txn,))
            else:
                snap["half_put"].append((h.txn, h.topic, h.qid, h.qoff, h.real_topic,
                                         h.producer_group, h.client, h.created, h.checks,
                                         h.next_check))
        self._cursors, self._batches, self._timers, self._halves = {}, {}, {}, {}
        return snap

    def _write(self, s: dict[str, list[Any]]) -> None:
        db = self._db
        assert db is not None
        db.execute("BEGIN")
        try:
            db.executemany("INSERT OR REPLACE INTO cursor VALUES (?,?,?,?,?,?)", s["cursor"])
            db.executemany("DELETE FROM cursor WHERE grp=? AND topic=? AND qid=? AND consumer=?",
                           s["cursor_del"])
            db.executemany("DELETE FROM batch WHERE id=?", s["batch_del"])
            db.executemany("INSERT OR REPLACE INTO batch VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                           s["batch_put"])
            db.executemany("DELETE FROM timer WHERE id=?", s["timer_del"])
            db.executemany("INSERT OR REPLACE INTO timer VALUES (?,?,?,?,?)", s["timer_put"])
            db.executemany("DELETE FROM half WHERE txn=?", s["half_del"])
            db.executemany("INSERT OR REPLACE INTO half VALUES (?,?,?,?,?,?,?,?,?,?)",
                           s["half_put"])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
