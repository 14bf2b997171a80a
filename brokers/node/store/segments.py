"""A directory of fixed-capacity segment files named by their zero-padded base offset.

Used for both the commit log (offsets are commit-log bytes) and each consume queue (offsets are
bytes of 20-byte entries). A segment covers ``[base, base + capacity)``; files are not
preallocated, they grow as data is written. Thread safety: the list is mutated (roll, delete
head, truncate) under ``lock``; lookups take it too. File descriptors of deleted segments are not
closed at once but parked for ``reap`` (10 s later at the earliest) so a ``pread`` that looked the
segment up just before the deletion never hits a recycled fd.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import FileOps
from .paths import parse_segment_name, segment_name


@dataclass(eq=False)
class Segment:
    base: int
    path: Path
    fd: int
    written: int  # bytes in the file (next write position relative to base)
    # Filled lazily by retention: store timestamp bound of the newest record, if known.
    newest_ms: int | None = field(default=None)

    @property
    def end(self) -> int:
        return self.base + self.written


class SegmentList:
    """Ordered segments of one directory; see module docstring for the guarantees."""

    def __init__(self, directory: Path, capacity: int, file_ops: FileOps) -> None:
        self.directory = directory
        self.capacity = capacity
        self.ops = file_ops
        self.lock = threading.Lock()
        self._segments: list[Segment] = []
        self._bases: list[int] = []
        self._graveyard: list[tuple[float, int]] = []  # (when deleted, fd), monotonic seconds

    # -- loading -----------------------------------------------------------------------------
    def load(self) -> None:
        """Open every segment file present, in base order."""
        self.directory.mkdir(parents=True, exist_ok=True)
        found = []
        for entry in self.directory.iterdir():
            base = parse_segment_name(entry.name)
            if base is not None and entry.is_file():
                found.append((base, entry))
        found.sort()
        with self.lock:
            for base, path in found:
                fd = self.ops.open(path, create=False)
                seg = Segment(base, path, fd, self.ops.size(fd))
                self._segments.append(seg)
                self._bases.append(base)

    # -- queries -----------------------------------------------------------------------------
    @property
    def segments(self) -> list[Segment]:
        with self.lock:
            return list(self._segments)

    def __len__(self) -> int:
        return len(self._segments)

    def first(self) -> Segment | None:
        segs = self._segments
        return segs[0] if segs else None

    def last(self) -> Segment | None:
        segs = self._segments
        return segs[-1] if segs else None

    def find(self, offset: int) -> Segment | None:
        """The segment whose range holds ``offset`` (None if deleted or never written)."""
        try:  # fast path, no lock: appends and most reads are in the newest segment
            last = self._segments[-1]
        except IndexError:  # no segment (yet): the locked path answers
            pass
        else:
            if last.base <= offset < last.base + self.capacity:
                return last
        with self.lock:
            i = bisect.bisect_right(self._bases, offset) - 1
            if i < 0:
                return None
            seg = self._segments[i]
        return seg if offset < seg.base + self.capacity else None

    def total_bytes(self) -> int:
        with self.lock:
            return sum(s.written for s in self._segments)

    def base_for(self, offset: int) -> int:
        return offset - offset % self.capacity

    # -- mutation ----------------------------------------------------------------------------
    def create(self, base: int) -> Segment:
        """Create (or reopen) the segment starting at ``base`` and append it to the list."""
        if base % self.capacity:
            raise ValueError(f"segment base {base} is not a multiple of {self.capacity}")
        path = self.directory / segment_name(base)
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = self.ops.open(path, create=True)
        # Make the new name durable: a checkpoint may later cover data in this file.
        self.ops.fsync_dir(self.directory)
        seg = Segment(base, path, fd, self.ops.size(fd))
        with self.lock:
            if self._bases and base <= self._bases[-1]:
                self.ops.close(fd)
                raise ValueError(f"segment {base} is not after {self._bases[-1]}")
            self._segments.append(seg)
            self._bases.append(base)
        return seg

    def truncate_to(self, offset: int) -> int:
        """Drop every byte at or after ``offset``; return how many bytes were removed.

        Segments that start after ``offset`` are deleted; a segment starting exactly there is
        kept, empty.
        """
        removed = 0
        with self.lock:
            while self._segments and self._segments[-1].base > offset:
                seg = self._segments.pop()
                self._bases.pop()
                removed += seg.written
                self._graveyard.append((time.monotonic(), seg.fd))
                self.ops.unlink(seg.path)
            last = self._segments[-1] if self._segments else None
        if last is not None and last.end > offset:
            removed += last.end - offset
            self.ops.ftruncate(last.fd, offset - last.base)
            last.written = offset - last.base
        return removed

    def delete_head(self, count: int) -> list[Segment]:
        """Remove the first ``count`` segments (files unlinked, fds parked until ``reap``)."""
        with self.lock:
            gone = self._segments[:count]
            del self._segments[:count]
            del self._bases[:count]
            now = time.monotonic()
            self._graveyard.extend((now, s.fd) for s in gone)
        for seg in gone:
            try:
                self.ops.unlink(seg.path)
            except FileNotFoundError:
                pass
        return gone

    def reap(self, min_age_s: float = 10.0) -> None:
        """Close fds of segments deleted at least ``min_age_s`` ago (readers have finished)."""
        limit = time.monotonic() - min_age_s
        with self.lock:
            old = [fd for when, fd in self._graveyard if when <= limit]
            self._graveyard = [(when, fd) for when, fd in self._graveyard if when > limit]
        for fd in old:
            self.ops.close(fd)

    def close(self) -> None:
        with self.lock:
            fds = [s.fd for s in self._segments] + [fd for _when, fd in self._graveyard]
            self._segments, self._bases, self._graveyard = [], [], []
        for fd in fds:
            self.ops.close(fd)
