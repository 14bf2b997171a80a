"""Message key -> commit-log offsets, in a SQLite table written by its own thread.

Why SQLite and not a RocketMQ-style hash-slot file: lookups by key are rare admin queries, the
table is derived data (rebuilt from the commit log after a crash), and SQLite gives a B-tree,
atomic commits and deletion by offset range for free. Rows are ``(topic, key, offset, store_ts)``
with an index on ``(topic, key)``. The writer hands over the rows of each committed chunk with
the chunk's end offset; ``committed_pos`` tells the checkpoint up to where rows are durable.
Chunks without keys (the common case) do not wake the thread: they only move ``_latest_end``.

Rows are committed in windows of ``COMMIT_WINDOW_S``: after the first rows arrive the thread
waits that long for more, so a busy writer's small batches share one SQLite transaction
(RocketMQ builds its index asynchronously too). A lookup still sees every row handed over before
it started: ``lookup`` waits (bounded) until the thread has committed up to there.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Final

from .writer import KeyRows

_STOP: Final = object()
# How long the index thread gathers rows before one commit (see the module docstring).
COMMIT_WINDOW_S: Final = 0.01
# The longest a lookup waits for rows handed over before it to be committed.
LOOKUP_CATCH_UP_S: Final = 2.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS msg_keys (
    topic TEXT NOT NULL,
    key TEXT NOT NULL,
    commitlog_offset INTEGER NOT NULL,
    store_ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS msg_keys_by_key ON msg_keys (topic, key, commitlog_offset);
CREATE INDEX IF NOT EXISTS msg_keys_by_offset ON msg_keys (commitlog_offset);
"""


class KeyIndex:
    def __init__(self, path: Path, durable: bool) -> None:
        self.path = path
        self.durable = durable
        # Written by the writer thread: end of the last chunk handed over, and of the last one
        # that had rows. Written by the index thread: end of the last chunk it committed.
        self._latest_end = 0
        self._rows_submitted_end = 0
        self._rows_committed_end = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="store-keyindex", daemon=True)
        self._db = self._connect()
        self._read_lock = threading.Lock()
        self._committed = threading.Condition()  # notified after each commit of the thread
        self._reader = sqlite3.connect(self.path, check_same_thread=False)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
        db.executescript(_SCHEMA)
        return db

    # -- recovery (before start) ----------------------------------------------------------------
    def drop_from(self, offset: int) -> None:
        """Delete rows at/after ``offset`` (they are re-added by the replay)."""
        self._db.execute("DELETE FROM msg_keys WHERE commitlog_offset >= ?", (offset,))
        self._latest_end = self._rows_submitted_end = self._rows_committed_end = offset

    def add_now(self, rows: KeyRows) -> None:
        """Insert synchronously (recovery replay only)."""
        if rows:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO msg_keys VALUES (?, ?, ?, ?)", rows)
            self._db.execute("COMMIT")

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, rows: KeyRows | None, end_pos: int) -> None:
        """Called by the writer thread after each committed chunk."""
        if rows:
            self._rows_submitted_end = end_pos  # before _latest_end: see committed_pos
            self._latest_end = end_pos
            self._queue.put((rows, end_pos))
        else:
            self._latest_end = end_pos

    @property
    def committed_pos(self) -> int:
        """Commit-log offset below which every key row is durable in the table."""
        # Read in the reverse order of the writes in ``submit``: every chunk with rows that ends
        # at or below ``latest`` has its end in ``submitted`` already, so if the index thread
        # has committed up to ``submitted``, nothing below ``latest`` is missing.
        latest = self._latest_end
        submitted = self._rows_submitted_end
        committed = self._rows_committed_end
        return latest if committed >= submitted else committed

    def delete_below(self, offset: int) -> None:
        """Forget rows of deleted commit-log segments (asynchronous)."""
        self._queue.put(("delete", offset))

    def _run(self) -> None:
        q = self._queue
        while True:
            items = [q.get()]
            if items[0] is not _STOP and items[0][0] != "delete":
                time.sleep(COMMIT_WINDOW_S)  # let more rows arrive: one transaction for all
            while True:
                try:
                    items.append(q.get_nowait())
                except queue.Empty:
                    break
            rows: KeyRows = []
            end = self._rows_committed_end
            stop = False
            deletes: list[int] = []
            for item in items:
                if item is _STOP:
                    stop = True
                elif item[0] == "delete":
                    deletes.append(item[1])
                else:
                    if item[0]:
                        rows.extend(item[0])
                    end = max(end, item[1])
            if rows or deletes:
                self._db.execute("BEGIN")
                if rows:
                    self._db.executemany("INSERT INTO msg_keys VALUES (?, ?, ?, ?)", rows)
                for below in deletes:
                    self._db.execute("DELETE FROM msg_keys WHERE commitlog_offset < ?", (below,))
                self._db.execute("COMMIT")
            with self._committed:
                self._rows_committed_end = end
                self._committed.notify_all()
            if stop:
                return

    def lookup(self, topic: str, key: str, limit: int) -> list[int]:
        """Newest-first commit-log offsets of messages of ``topic`` carrying ``key``, including
        every row handed to the index before the call (waits up to LOOKUP_CATCH_UP_S for them)."""
        wanted = self._rows_submitted_end
        with self._committed:
            self._committed.wait_for(lambda: self._rows_committed_end >= wanted
                                     or not self._thread.is_alive(), LOOKUP_CATCH_UP_S)
        with self._read_lock:
            cur = self._reader.execute(
                "SELECT commitlog_offset FROM msg_keys WHERE topic = ? AND key = ? "
                "ORDER BY commitlog_offset DESC LIMIT ?", (topic, key, limit))
            return [r[0] for r in cur.fetchall()]

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def close(self) -> None:
        self.stop()
        self._db.close()
        self._reader.close()
