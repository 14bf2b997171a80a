"""Every on-disk path of a node's data directory, derived from its root in one place.

    <root>/layout                        segment sizes fixed at creation (see layout.py)
    <root>/lock                          flock'ed while a store has the directory open
    <root>/abort                         exists while the store is open; left behind by a crash
    <root>/checkpoint                    flushed commit-log offset (see checkpoint.py)
    <root>/commitlog/<base:020d>         commit-log segments named by their first byte offset
    <root>/consumequeue/<topic>/<queue>/<base:020d>   consume-queue segments (byte offset)
    <root>/index/keys.db                 message-key index (SQLite)
    <root>/state/state.db                durable small state (SQLite, WAL)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SEGMENT_NAME_DIGITS = 20


def segment_name(base: int) -> str:
    return f"{base:0{SEGMENT_NAME_DIGITS}d}"


def parse_segment_name(name: str) -> int | None:
    if len(name) != SEGMENT_NAME_DIGITS or not name.isdigit():
        return None
    return int(name)


@dataclass(frozen=True)
class StorePaths:
    root: Path

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def layout(self) -> Path:
        return self.root / "layout"

    @property
    def abort(self) -> Path:
        return self.root / "abort"

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint"

    @property
    def commitlog(self) -> Path:
        return self.root / "commitlog"

    @property
    def consumequeue(self) -> Path:
        return self.root / "consumequeue"

    def queue_dir(self, topic: str, queue_id: int) -> Path:
        return self.consumequeue / topic / str(queue_id)

    @property
    def key_index(self) -> Path:
        return self.root / "index" / "keys.db"

    @property
    def state_db(self) -> Path:
        return self.root / "state" / "state.db"

    def make_dirs(self) -> None:
        for d in (self.root, self.commitlog, self.consumequeue, self.key_index.parent,
                  self.state_db.parent):
            d.mkdir(parents=True, exist_ok=True)
