"""Typed configuration of the storage engine, plus the file-operations seam.

Everything the store needs from its environment comes in through :class:`StoreConfig`:
sizes, durability, retention, a clock and the object that performs raw file calls. Tests pass
tiny segment sizes, a fake clock and a :class:`FileOps` subclass that injects ``ENOSPC``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

KiB: Final = 1024
MiB: Final = 1024 * KiB
GiB: Final = 1024 * MiB
SECONDS: Final = 1.0
HOURS: Final = 3600.0


_IOV_MAX: Final = min(os.sysconf("SC_IOV_MAX"), 1024)
_RWF_NOWAIT: Final[int | None] = getattr(os, "RWF_NOWAIT", None)  # Linux 4.14+
_FALLOC_FL_KEEP_SIZE: Final = 1
_fallocate: Callable[[int, int, int, int], int] | None = None


class NotCached(Exception):
    """A cached-only read would have waited for the disk (``FileOps.pread_cached``)."""


def _load_fallocate() -> Callable[[int, int, int, int], int] | None:
    """libc's ``fallocate(2)`` (Linux), which ``os`` does not expose with a mode; None elsewhere."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def wall_clock_ms() -> int:
    """The default clock: wall-clock milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class FileOps:
    """The raw file calls the store makes for log and queue data, in one overridable place.

    The store never calls ``os.pwrite``/``os.fdatasync``/... directly for segment data; it goes
    through an instance of this class (``StoreConfig.file_ops``). Subclasses can inject faults
    (a full disk, an I/O error) without touching the store's own code. Methods are thin and
    thread-safe as long as the underlying OS calls are.
    """

    def open(self, path: Path, create: bool) -> int:
        flags = os.O_RDWR | (os.O_CREAT if create else 0)
        return os.open(path, flags, 0o644)

    def pwrite(self, fd: int, data: bytes | bytearray | memoryview, pos: int) -> int:
        """Write all of ``data`` at ``pos``; loops over short writes."""
        view = memoryview(data)
        total = 0
        while total < len(view):
            total += os.pwrite(fd, view[total:], pos + total)
        return total

    def pwritev(self, fd: int, buffers: list[bytes], pos: int) -> int:
        """Write the concatenation of ``buffers`` at ``pos`` without joining them first."""
        total = 0
        for i in range(0, len(buffers), _IOV_MAX):
            group = buffers[i : i + _IOV_MAX]
            want = sum(map(len, group))
            done = os.pwritev(fd, group, pos + total)
            if done < want:  # short write: finish the rest the simple way
                self.pwrite(fd, b"".join(group)[done:], pos + total + done)
            total += want
        return total

    def preallocate(self, fd: int, pos: int, length: int) -> None:
        """Allocate blocks for ``[pos, pos + length)`` without changing the file size
        (``fallocate(FALLOC_FL_KEEP_SIZE)``). Raises OSError (EOPNOTSUPP where unsupported)."""
        global _fallocate
        if _fallocate is None:
            _fallocate = _load_fallocate()
            if _fallocate is None:
                raise OSError(errno.EOPNOTSUPP, "fallocate is not available")
        if _fallocate(fd, _FALLOC_FL_KEEP_SIZE, pos, length) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def pread(self, fd: int, size: int, pos: int) -> bytes:
        return os.pread(fd, size, pos)

    def pread_cached(self, fd: int, size: int, pos: int) -> bytes:
        """``pread`` that never waits for the disk (``preadv2`` with ``RWF_NOWAIT``): the bytes
        when every page is in the page cache, else :class:`NotCached`. A short read (pages
        missing at the end, or the end of the file) is NotCached too: the caller retries with
        ``pread`` on a thread, which sorts out what it was."""
        if _RWF_NOWAIT is None:
            raise NotCached
        buf = bytearray(size)
        try:
            n = os.preadv(fd, [buf], pos, _RWF_NOWAIT)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EOPNOTSUPP, errno.EINVAL):
                raise NotCached from None
            raise
        if n < size:
            raise NotCached
        return bytes(buf)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def fsync_dir(self, path: Path) -> None:
        dfd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def close(self, fd: int) -> None:
        os.close(fd)

    def unlink(self, path: Path) -> None:
        os.unlink(path)


@dataclass(frozen=True)
class StoreConfig:
    """Configuration of one node's message store (see docs/store-contract.md)."""

    root: Path
    segment_bytes: int = 1 * GiB
    cq_segment_entries: int = 300_000
    durability: Literal["sync", "async"] = "sync"
    flush_interval_s: float = 0.2 * SECONDS
    checkpoint_interval_s: float = 1.0 * SECONDS
    max_message_bytes: int = 4 * MiB
    retention_hours: float = 72.0
    storage_cap_bytes: int | None = None
    retention_interval_s: float = 60.0 * SECONDS
    node_id: int = 0
    # After a write fails with ENOSPC, appends are refused until this long has passed, then the
    # next batch probes the disk again.
    disk_full_retry_s: float = 1.0 * SECONDS
    clock_ms: Callable[[], int] = field(default=wall_clock_ms, compare=False)
    file_ops: FileOps = field(default_factory=FileOps, compare=False)
    read_threads: int = 4

    def __post_init__(self) -> None:
        if self.segment_bytes < 4 * KiB:
            raise ValueError("segment_bytes must be at least 4 KiB")
        if self.cq_segment_entries < 16:
            raise ValueError("cq_segment_entries must be at least 16")
        if self.durability not in ("sync", "async"):
            raise ValueError(f"unknown durability mode {self.durability!r}")
        if not 0 <= self.node_id < 2**32:
            raise ValueError("node_id must fit in 32 bits")
