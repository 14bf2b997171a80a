"""Background flushing and checkpointing, on their own thread (never the event loop).

* ``async`` durability: every ``flush_interval_s`` the active commit-log segment is
  ``fdatasync``'ed (sync mode needs no flusher: the writer syncs each batch).
* every ``checkpoint_interval_s``: note D = the writer's committed position, fsync the consume-queue
  segments written since the last round, take the smaller of D and what the key index has
  committed, make sure the commit log is synced past it, and write the checkpoint.
* every ``retention_interval_s``, and on every round while the log is over its storage cap: run
  the retention policy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .checkpoint import Checkpoint, write_checkpoint
from .commitlog import CommitLog
from .config import FileOps, StoreConfig
from .consumequeue import ConsumeQueue
from .keyindex import KeyIndex
from .paths import StorePaths
from .writer import AppendWriter

log = logging.getLogger(__name__)


class Maintenance:
    def __init__(self, paths: StorePaths, config: StoreConfig, commitlog: CommitLog,
                 writer: AppendWriter, keys: KeyIndex, retention: Callable[[], object]) -> None:
        self.paths = paths
        self.config = config
        self.commitlog = commitlog
        self.writer = writer
        self.keys = keys
        self.retention = retention
        self.ops = config.file_ops
        self.lock = threading.Lock()  # one flush/checkpoint at a time (thread vs close())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="store-maintenance", daemon=True)
        self.checkpoints = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        cfg = self.config
        tick = cfg.flush_interval_s if cfg.durability == "async" else cfg.checkpoint_interval_s
        tick = min(tick, cfg.checkpoint_interval_s)
        next_cp = time.monotonic() + cfg.checkpoint_interval_s
        next_ret = time.monotonic() + cfg.retention_interval_s
        while not self._stop.wait(tick):
            try:
                if cfg.durability == "async":
                    self.flush_commitlog()
                now = time.monotonic()
                if now >= next_cp:
                    next_cp = now + cfg.checkpoint_interval_s
                    self.checkpoint()
                if now >= next_ret or self.over_cap():
                    next_ret = now + cfg.retention_interval_s
                    self.retention()
            except Exception:  # keep maintaining; the failure is logged, writes report their own
                log.exception("store maintenance round failed")

    def over_cap(self) -> bool:
        cap = self.config.storage_cap_bytes
        return cap is not None and self.commitlog.files.total_bytes() > cap

    def flush_commitlog(self) -> int:
        """fdatasync the active segment; return the offset now known durable."""
        with self.lock:
            pos = self.writer.committed_pos
            seg = self.commitlog.files.last()
            if seg is not None and pos > self.writer.synced_pos:
                self.ops.fdatasync(seg.fd)
                if pos > self.writer.synced_pos:
                    self.writer.synced_pos = pos
            return self.writer.synced_pos

    def checkpoint(self) -> Checkpoint:
        """Make consume queues and the log durable up to a point and record it (see module doc)."""
        with self.lock:
            # Atomic with the writer's publication: every queue written below D is in ``dirty``
            # (or was synced by an earlier round), because the writer marks queues dirty before
            # it advances committed_pos.
            with self.writer.dirty_lock:
                d = self.writer.committed_pos
                dirty, self.writer.dirty_cqs = self.writer.dirty_cqs, set()
            for cq in dirty:
                sync_queue(cq, self.ops)
        flushed = self.flush_commitlog() if self.config.durability == "async" else self.writer.synced_pos
        d = min(d, self.keys.committed_pos, flushed)
        cp = Checkpoint(d, flushed, self.config.clock_ms())
        with self.lock:
            write_checkpoint(self.paths.checkpoint, cp)
        self.checkpoints += 1
        return cp


def sync_queue(cq: ConsumeQueue, ops: FileOps) -> None:
    """fdatasync every segment of ``cq`` written since the previous call for this queue."""
    segs = [seg for seg in cq.files.segments if seg.base >= cq.synced_base]
    for seg in segs:
        ops.fdatasync(seg.fd)
    if segs:
        cq.synced_base = segs[-1].base
