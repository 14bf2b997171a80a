"""Retention: delete whole commit-log segments by age and by a storage cap.

Rule, applied oldest segment first and never to the active (last) segment:

* a segment is *expired* when the first record of the segment after it (an upper bound for
  every store timestamp inside it) is older than ``retention_hours``;
* while the log is larger than ``storage_cap_bytes`` the oldest segment goes, expired or not;
* deletion stops at the first due segment that holds a *pinned* offset: ``StateStore.pins()``
  is the lowest commit-log offset still needed by a pending timer, transaction half message or
  in-flight receipt. The store never moves a record; the segment stays until the pin is
  released. ``blocked_at`` tells the delivery engine, which then re-appends the held copies of
  delay timers and transaction halves that sit there (``DeliveryEngine.relocate_held``, as
  Apache RocketMQ rolls its timer messages), so only in-flight receipts, which expire, keep a
  segment for long. While the log stays over the cap, ``cap_exceeded`` is set and appends are
  refused with STORAGE_CAP_EXCEEDED until a later run gets under the cap (relocation appends
  excepted).

After deleting, each consume queue's ``min_offset`` moves to its first entry that points into a
remaining segment, consume-queue segments wholly below it are deleted, and key-index rows below
the new commit-log minimum are dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from .commitlog import CommitLog
from .config import StoreConfig
from .consumequeue import ENTRY_SIZE, ConsumeQueues
from .keyindex import KeyIndex
from .record import CHECKSUM_OF_MAGIC, FIXED, HEADER_SIZE, PREFIX
from .segments import Segment


@dataclass(frozen=True)
class RetentionReport:
    segments_deleted: int
    bytes_deleted: int
    new_min_offset: int
    blocked_by_pin: int | None
    cap_exceeded: bool
    queue_segments_deleted: int


class Retention:
    def __init__(self, config: StoreConfig, commitlog: CommitLog, cqs: ConsumeQueues,
                 keys: KeyIndex, pins: Callable[[], int | None]) -> None:
        self.config = config
        self.commitlog = commitlog
        self.cqs = cqs
        self.keys = keys
        self.pins = pins
        self.cap_exceeded = False
        self.cap_detail = ""
        # The pinned offset that stopped the last run from deleting a segment that was due
        # (None: nothing due was kept). The delivery engine moves held copies out of the way.
        self.blocked_at: int | None = None
        self._lock = threading.Lock()

    def over_cap(self) -> bool:
        cap = self.config.storage_cap_bytes
        return cap is not None and self.commitlog.files.total_bytes() > cap

    def run(self, now_ms: int) -> RetentionReport:
        """Apply the rule in the module docstring once; thread-safe (one run at a time)."""
        with self._lock:
            return self._run(now_ms)

    def _run(self, now_ms: int) -> RetentionReport:
        files = self.commitlog.files
        files.reap()
        for cq in self.cqs.all():
            cq.files.reap()
        segs = files.segments
        cap_bytes = self.config.storage_cap_bytes
        keep_ms = int(self.config.retention_hours * 3600 * 1000)
        pin = self.pins()
        total = sum(s.written for s in segs)
        doomed: list[Segment] = []
        blocked: int | None = None
        for seg, nxt in zip(segs, segs[1:]):
            over = cap_bytes is not None and total > cap_bytes
            newest = self._first_store_ts(nxt)
            expired = newest is not None and newest + keep_ms <= now_ms
            if not (over or expired):
                break
            if pin is not None and seg.base + files.capacity > pin:
                blocked = pin  # due for deletion, but a pending message is inside
                break
            doomed.append(seg)
            total -= seg.written
        if doomed:
            files.delete_head(len(doomed))
        new_min = self.commitlog.min_offset
        cq_deleted = self._advance_queues(new_min) if doomed else 0
        if doomed:
            self.keys.delete_below(new_min)
        self.blocked_at = blocked
        self.cap_exceeded = cap_bytes is not None and total > cap_bytes
        self.cap_detail = (
            f"commit log holds {total} bytes, cap {cap_bytes}; oldest deletable segment is pinned "
            f"by a pending message at offset {blocked}" if self.cap_exceeded else "")
        return RetentionReport(len(doomed), sum(s.written for s in doomed), new_min, blocked,
                               self.cap_exceeded, cq_deleted)

    def _first_store_ts(self, seg: Segment) -> int | None:
        head = self.commitlog.read(seg.base, HEADER_SIZE)
        if len(head) < HEADER_SIZE or PREFIX.unpack_from(head)[1] not in CHECKSUM_OF_MAGIC:
            return None
        return FIXED.unpack_from(head, PREFIX.size)[3]  # type: ignore[no-any-return]

    def _advance_queues(self, new_min: int) -> int:
        deleted = 0
        for cq in self.cqs.all():
            hi = cq.max_offset
            cq.min_offset = cq._first_where(cq.min_offset, hi, lambda cl, size: size > 0 and cl >= new_min)
            segs = cq.files.segments
            whole = 0
            for seg in segs[:-1]:
                if (seg.base + cq.files.capacity) // ENTRY_SIZE <= cq.min_offset:
                    whole += 1
                else:
                    break
            if whole:
                cq.files.delete_head(whole)
                deleted += whole
        return deleted
