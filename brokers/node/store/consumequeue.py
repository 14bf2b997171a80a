"""Consume queues: per (topic, queue id), fixed-width entries pointing into the commit log.

Entry ``n`` of a queue lives at byte ``n * 20`` of the queue's segment files, so logical offset
-> entry is one ``pread``. An entry is (little-endian):

    offset  size  field
         0     8  commitlog_offset   where the record starts
         8     4  size               record size in bytes (0 = hole, never valid)
        12     8  tag_hash           tag_hash(tag), so tag filters need no commit-log read

Consume queues are derived data: recovery truncates them to what the checkpoint covers and
rebuilds the rest from the commit log. Only the writer thread appends; readers only touch
entries below ``max_offset``, which the writer publishes after the entries are written.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Final

from .config import FileOps
from .paths import StorePaths
from .segments import SegmentList

ENTRY: Final = struct.Struct(
    "<"
    "q"  # commitlog_offset
    "i"  # size
    "q"  # tag_hash
)
ENTRY_SIZE: Final = ENTRY.size  # 20
_HOLE_PROBE: Final = 64  # how far back a binary-search probe looks past holes


@lru_cache(maxsize=65536)
def tag_hash(tag: str) -> int:
    """Stable signed 64-bit hash of a tag, as kept in consume-queue entries; "" hashes to 0."""
    if not tag:
        return 0
    return int.from_bytes(hashlib.blake2b(tag.encode(), digest_size=8).digest(), "little", signed=True)


class ConsumeQueue:
    """One queue's entries. ``min_offset``/``max_offset`` bound the readable logical offsets."""

    def __init__(self, topic: str, queue_id: int, directory: Path, entries_per_segment: int,
                 ops: FileOps) -> None:
        self.topic = topic
        self.queue_id = queue_id
        self.files = SegmentList(directory, entries_per_segment * ENTRY_SIZE, ops)
        self.ops = ops
        self.min_offset = 0
        self.max_offset = 0  # visible to readers: one past the last committed entry
        self.next_offset = 0  # writer-side: the next entry to write (== max_offset between batches)
        self.synced_base = 0  # maintenance-side: segments below this base are fsync'ed

    # -- recovery ----------------------------------------------------------------------------
    def load(self, keep_below: int, commitlog_min: int) -> int:
        """Open files, drop entries at/after commit-log offset ``keep_below``; return dropped count.

        ``min_offset`` becomes the first entry that points at or after ``commitlog_min``.
        """
        self.files.load()
        first, last = self.files.first(), self.files.last()
        if first is None or last is None:
            return 0
        lo = first.base // ENTRY_SIZE
        end = last.end // ENTRY_SIZE
        self.min_offset = self._first_where(lo, end, lambda cl, size: size > 0 and cl >= commitlog_min)
        keep = self._first_where(self.min_offset, end, lambda cl, size: cl >= keep_below)
        dropped = end - keep
        self.files.truncate_to(keep * ENTRY_SIZE)
        self.max_offset = self.next_offset = keep
        if self.min_offset > keep:
            self.min_offset = keep
        return dropped

    def _first_where(self, lo: int, hi: int, pred: Callable[[int, int], bool]) -> int:
        """Smallest n in [lo, hi) whose entry satisfies ``pred`` (monotone), else ``hi``.

        A hole (size 0) in the middle of a queue is the slot of a record recovery found damaged;
        it takes the value of the nearest real entry before it, which keeps the predicate
        monotone. Holes with no real entry shortly before them (the zero-filled start of a
        queue rebuilt from a later offset) count as not satisfying ``pred``.
        """
        start = lo
        while lo < hi:
            mid = (lo + hi) // 2
            probe, entry = mid, self.entry(mid)
            while entry is not None and entry[1] == 0 and probe > start and mid - probe < _HOLE_PROBE:
                probe -= 1
                entry = self.entry(probe)
            if entry is not None and entry[1] > 0 and pred(entry[0], entry[1]):
                hi = mid
            else:
                lo = mid + 1
        return lo

    def first_at_or_after(self, commitlog_offset: int) -> int:
        """The first logical offset whose message lies at or after ``commitlog_offset`` in the
        commit log (``max_offset`` if none): entries below it point below that offset."""
        return self._first_where(self.min_offset, self.max_offset,
                                 lambda cl, size: cl >= commitlog_offset)

    # -- reading -----------------------------------------------------------------------------
    def entry(self, n: int) -> tuple[int, int, int] | None:
        """Entry ``n`` as (commitlog_offset, size, tag_hash), or None if its file is gone."""
        raw = self.read_raw(n, 1)
        if len(raw) < ENTRY_SIZE:
            return None
        return ENTRY.unpack_from(raw, 0)  # type: ignore[return-value]

    def read_raw(self, first: int, count: int, cached_only: bool = False) -> bytes:
        """Raw bytes of entries [first, first + count), stopping early at a missing file.
        ``cached_only``: raise ``NotCached`` rather than wait for the disk."""
        pos = first * ENTRY_SIZE
        want = count * ENTRY_SIZE
        pread = self.ops.pread_cached if cached_only else self.ops.pread
        chunks: list[bytes] = []
        while want > 0:
            seg = self.files.find(pos)
            if seg is None:
                break
            rel = pos - seg.base
            n = min(want, self.files.capacity - rel)
            data = pread(seg.fd, n, rel)
            chunks.append(data)
            if len(data) < n:
                break
            pos += n
            want -= n
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    # -- writing (writer thread only) ---------------------------------------------------------
    def write(self, first: int, data: bytes | bytearray) -> None:
        """Write packed entries starting at logical offset ``first``, rolling segments as needed."""
        pos = first * ENTRY_SIZE
        view = memoryview(data)
        cap = self.files.capacity
        while view:
            seg = self.files.find(pos)
            if seg is None:
                seg = self.files.create(self.files.base_for(pos))
            rel = pos - seg.base
            n = min(len(view), cap - rel)
            self.ops.pwrite(seg.fd, view[:n], rel)
            if rel + n > seg.written:
                seg.written = rel + n
            pos += n
            view = view[n:]

    def rollback(self, to_offset: int) -> None:
        """Forget entries from ``to_offset`` on (after a failed batch)."""
        self.next_offset = to_offset
        try:
            self.files.truncate_to(to_offset * ENTRY_SIZE)
        except OSError:
            pass  # entries past next_offset are overwritten by the next batch anyway

    def last_segment_fd(self) -> int | None:
        seg = self.files.last()
        return seg.fd if seg is not None else None

    def close(self) -> None:
        self.files.close()


class ConsumeQueues:
    """The registry of every queue of the node, keyed by (topic, queue_id)."""

    def __init__(self, paths: StorePaths, entries_per_segment: int, ops: FileOps) -> None:
        self.paths = paths
        self.entries_per_segment = entries_per_segment
        self.ops = ops
        self.by_key: dict[tuple[str, int], ConsumeQueue] = {}
        self.by_topic: dict[str, dict[int, ConsumeQueue]] = {}

    def load_all(self, keep_below: int, commitlog_min: int) -> int:
        """Open every queue on disk (see ``ConsumeQueue.load``); return entries dropped."""
        dropped = 0
        root = self.paths.consumequeue
        root.mkdir(parents=True, exist_ok=True)
        for topic_dir in sorted(root.iterdir()):
            for queue_dir in sorted(topic_dir.iterdir()):
                if not queue_dir.name.isdigit():
                    continue
                cq = self._add(topic_dir.name, int(queue_dir.name))
                dropped += cq.load(keep_below, commitlog_min)
        return dropped

    def get(self, topic: str, queue_id: int) -> ConsumeQueue | None:
        return self.by_key.get((topic, queue_id))

    def get_or_create(self, topic: str, queue_id: int) -> ConsumeQueue:
        cq = self.by_key.get((topic, queue_id))
        if cq is None:
            cq = self._add(topic, queue_id)
        return cq

    def _add(self, topic: str, queue_id: int) -> ConsumeQueue:
        cq = ConsumeQueue(topic, queue_id, self.paths.queue_dir(topic, queue_id),
                          self.entries_per_segment, self.ops)
        self.by_key[(topic, queue_id)] = cq
        self.by_topic.setdefault(topic, {})[queue_id] = cq
        return cq

    def all(self) -> list[ConsumeQueue]:
        return list(self.by_key.values())

    def close(self) -> None:
        for cq in self.all():
            cq.close()
