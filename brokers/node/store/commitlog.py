"""The commit log: one append-only byte stream over fixed-capacity segment files.

Offsets are global byte positions; segment ``k`` covers ``[k * capacity, (k + 1) * capacity)``
and is named by its base. Records never straddle segments (see ``record`` for the blank that
ends a segment). Writing is done by ``writer.AppendWriter`` (one thread); this class owns the
files, positional reads and the recovery scan.

Recovery rule (``scan``): starting at a record boundary, read forward validating each record
(length, magic, CRC). A blank or a short remainder ends a segment. The first invalid record in the
LAST segment is a torn tail: everything from it on is cut. An invalid record in an earlier
segment (sealed and fsync'ed before the next one was created, so only media corruption can do
that) is reported and the scan resumes at the next segment, keeping the later data. In any
segment, a record whose header is intact but whose CRC fails, and which is followed by a whole
valid record, is damaged in place rather than torn: it is reported, skipped (not dispatched) and
the scan goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .config import StoreConfig
from .paths import StorePaths
from .record import BLANK, BLANK_MAGIC, BLANK_SIZE, check_record
from .segments import Segment, SegmentList

SCAN_CHUNK = 4 * 1024 * 1024

RecordSink = Callable[[int, bytes, int], None]  # (commitlog_offset, buffer, position in buffer)


@dataclass
class ScanResult:
    end: int
    records: int = 0
    torn_at: int | None = None
    torn_reason: str = ""
    corrupt: list[tuple[int, str]] = field(default_factory=list)


class CommitLog:
    def __init__(self, paths: StorePaths, config: StoreConfig) -> None:
        self.config = config
        self.ops = config.file_ops
        self.capacity = config.segment_bytes
        self.files = SegmentList(paths.commitlog, config.segment_bytes, config.file_ops)
        self.write_pos = 0  # owned by the writer thread after open

    def load(self) -> None:
        self.files.load()

    @property
    def min_offset(self) -> int:
        first = self.files.first()
        return first.base if first is not None else self.write_pos

    def read(self, offset: int, size: int, cached_only: bool = False) -> bytes:
        """Up to ``size`` bytes at ``offset`` from the one segment holding it (b"" if gone).
        ``cached_only``: raise ``NotCached`` rather than wait for the disk."""
        seg = self.files.find(offset)
        if seg is None:
            return b""
        rel = offset - seg.base
        pread = self.ops.pread_cached if cached_only else self.ops.pread
        return pread(seg.fd, min(size, self.capacity - rel), rel)

    # -- recovery ----------------------------------------------------------------------------
    def scan(self, start: int, sink: RecordSink) -> ScanResult:
        """Validate records from ``start`` and feed each good one to ``sink``; cut a torn tail.

        Sets ``write_pos`` to the end of the last good record. See the module docstring for the
        rule applied to invalid records.
        """
        segments = self.files.segments
        result = ScanResult(end=start)
        if not segments:
            self.write_pos = start
            return result
        last = segments[-1]
        for seg in segments:
            if seg.base + self.capacity <= start:
                continue
            begin = max(start, seg.base) - seg.base
            end_rel, bad = self._scan_segment(seg, begin, sink, result)
            if bad is None:
                result.end = seg.base + end_rel
                continue
            at = seg.base + end_rel
            if seg is last:
                result.torn_at, result.torn_reason = at, bad
                result.end = at
                self.files.truncate_to(at)
            else:
                result.corrupt.append((at, bad))
        self.write_pos = result.end
        return result

    def _scan_segment(self, seg: Segment, rel: int, sink: RecordSink,
                      result: ScanResult) -> tuple[int, str | None]:
        """Scan one segment from ``rel``; return (end position, reason if stopped at a bad record)."""
        size = seg.written
        while rel < size:
            if size - rel < BLANK_SIZE:
                if seg.base + self.capacity - (seg.base + rel) < BLANK_SIZE:
                    return self.capacity, None  # short remainder: a legitimate segment end
                return rel, "truncated record header"
            chunk = self.ops.pread(seg.fd, min(SCAN_CHUNK, size - rel), rel)
            pos = 0
            while len(chunk) - pos >= BLANK_SIZE:
                total, magic = BLANK.unpack_from(chunk, pos)
                if magic == BLANK_MAGIC:
                    if rel + pos + total == self.capacity:
                        return self.capacity, None
                    return rel + pos, "bad blank length"
                if BLANK_SIZE <= total <= self.capacity - (rel + pos) and total > len(chunk) - pos:
                    if rel + pos + total <= size and pos > 0:
                        break  # record continues past this chunk: re-read from it
                    if rel + pos + total <= size:
                        chunk = self.ops.pread(seg.fd, total, rel + pos)  # one huge record
                        rel, pos = rel + pos, 0
                problem = check_record(chunk, pos, len(chunk))
                if problem == "CRC mismatch" and self._valid_at(seg, rel + pos + total, size):
                    # Damaged in place, not torn: a whole record follows. Keep scanning; the
                    # record is not dispatched, so its queue position reads as CORRUPTED.
                    result.corrupt.append((seg.base + rel + pos, problem))
                    pos += total
                    continue
                if problem is not None:
                    return rel + pos, problem
                sink(seg.base + rel + pos, chunk, pos)
                result.records += 1
                pos += total
            if pos == 0:
                return rel, "truncated record"
            rel += pos
        return rel, None

    def _valid_at(self, seg: Segment, rel: int, size: int) -> bool:
        """Whether a whole valid record (or the segment's blank) starts at ``rel``."""
        if rel >= size:
            return False  # nothing follows: a damaged last record is treated as torn
        head = self.ops.pread(seg.fd, BLANK_SIZE, rel)
        if len(head) < BLANK_SIZE:
            return False
        total, magic = BLANK.unpack_from(head, 0)
        if magic == BLANK_MAGIC:
            return rel + total == self.capacity
        if not BLANK_SIZE <= total <= size - rel:
            return False
        return check_record(self.ops.pread(seg.fd, total, rel), 0, total) is None

    def close(self) -> None:
        self.files.close()
