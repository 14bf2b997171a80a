"""MessageStore: the node's storage engine behind one asyncio-facing object.

Composition (one class per noun): ``CommitLog`` (segments, reads, recovery scan),
``ConsumeQueues`` (per-queue fixed-width entries), ``KeyIndex`` (SQLite key table),
``AppendWriter`` (the writer thread: batching, group commit), ``Maintenance`` (flush, checkpoint,
retention thread), ``StateStore`` (durable small state). ``open`` recovers (see ``recovery``).

Thread model: appends are queued to the writer thread; reads run on a small thread pool; the
event loop only validates cheap things, creates futures and decodes nothing heavier than it must.
Everything here is meant to be called from the one event loop of the broker process.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .commitlog import CommitLog
from .config import MiB, NotCached, StoreConfig
from .consumequeue import ENTRY, ConsumeQueue, ConsumeQueues
from .errors import InvalidMessageIdError, StoreClosedError, StoreLockedError
from .keyindex import KeyIndex
from .layout import effective_config
from .maintenance import Maintenance, sync_queue
from .model import (
    AppendResult, AppendStatus, NewMessage, ReadResult, ReadStatus, RecoveryReport, StoredMessage,
    StoreState,
)
from .msgid import decode_message_id
from .paths import StorePaths
from .record import BLANK_MAGIC, FIXED, HEADER_SIZE, PREFIX, check_record, decode
from .recovery import recover
from .retention import Retention, RetentionReport
from .state import StateStore
from .usage import StoreUsage
from .writer import MAX_BATCH_MESSAGES, AppendWriter

_CLOSED = AppendResult(AppendStatus.STORE_CLOSED, detail="store is closed")
# How many consume-queue entries one filtered read may skip over before returning.
MAX_FILTER_SCAN = 4096
# Reads of at most this many commit-log bytes are tried on the loop, from the page cache only.
INLINE_READ_MAX = 256 * 1024
_PROBE_BYTES = 4096
# A read takes records of one queue; other queues' records sit between them in the commit log.
# One pread spans picked records up to this far apart (the bytes between are read and dropped),
# at most _RUN_MAX_BYTES per pread: with a few queues interleaved this turns one pread per
# message into one per read (~2-4 us/msg less CPU for 1 KiB messages, 4 queues; delivery.md).
_RUN_MAX_GAP = 64 * 1024
_RUN_MAX_BYTES = 1024 * 1024


def _run_end(picked: list[tuple[int, int, int]], i: int, cap: int,
             max_span: int = _RUN_MAX_BYTES) -> int:
    """End (exclusive) of the run of ``picked`` (queue offset, commit-log offset, size) entries
    from ``i`` that one pread serves: ascending, same segment, gaps <= _RUN_MAX_GAP, spanning
    at most ``max_span`` bytes of commit log (the first entry always belongs to the run)."""
    first = picked[i][1]
    seg = first // cap
    j = i + 1
    prev_end = first + picked[i][2]
    while j < len(picked):
        _q, off, size = picked[j]
        if not 0 <= off - prev_end <= _RUN_MAX_GAP or off // cap != seg \
                or off + size - first > max_span:
            break
        prev_end = off + size
        j += 1
    return j


# Most single appends one AppendGroup takes (one writer batch). Smaller groups (64, so that
# more than one request is in flight for the group-commit pipeline) were measured: each group
# costs a loop wake-up and, in sync mode, an fsync, and on this machine that cost more CPU per
# message than the overlap saved (docs/storage.md, Performance).
GROUP_MAX = MAX_BATCH_MESSAGES


class AppendGroup:
    """Single appends of one loop iteration, sent to the writer as one request.

    At most ``GROUP_MAX`` appends share a group. Every appender of the group awaits the same
    future: in a loop micro-benchmark (256 tasks), a future per message cost ~2.3 us of loop CPU
    per message, a shared one ~1.6 us. The writer resolves the group through ``set_result``.
    Cancelling one appender's task cancels that shared future too; the others see a CancelledError that is
    not theirs, and go back to waiting (``wait_again``) on a fresh future, so one caller's
    cancellation never cancels another's append. As before, a cancelled append may still be
    written (it is already queued).
    """

    __slots__ = ("fut", "messages", "results")

    def __init__(self, fut: asyncio.Future[list[AppendResult]]) -> None:
        self.fut = fut
        self.messages: list[NewMessage] = []
        self.results: list[AppendResult] | None = None

    # The writer resolves requests through these two (see writer.Resolvable).
    def done(self) -> bool:
        return self.results is not None

    def set_result(self, results: list[AppendResult], /) -> None:
        self.results = results
        if not self.fut.done():
            self.fut.set_result(results)

    async def wait_again(self, index: int) -> AppendResult:
        """After a CancelledError that was not this task's: wait for the group's results."""
        while self.results is None:
            fut = self.fut
            if fut.done():  # cancelled by another appender's cancellation
                fut = self.fut = fut.get_loop().create_future()
            try:
                await fut
            except asyncio.CancelledError:
                if own_cancellation(fut):
                    raise
        return self.results[index]


def own_cancellation(fut: asyncio.Future[Any]) -> bool:
    """Whether a CancelledError raised by awaiting ``fut`` is the current task's own (as opposed
    to ``fut`` having been cancelled through another task awaiting it)."""
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0 or not fut.cancelled()


class MessageStore:
    """See docs/store-contract.md for the contract and docs/storage.md for the format."""

    def __init__(self, config: StoreConfig, loop: asyncio.AbstractEventLoop) -> None:
        self.config = config
        self.paths = StorePaths(config.root)
        self._loop = loop
        self._lock_fd = -1
        self.commitlog = CommitLog(self.paths, config)
        self.cqs = ConsumeQueues(self.paths, config.cq_segment_entries, config.file_ops)
        self.keys: KeyIndex
        self.usage: StoreUsage
        self.state: StateStore
        self.writer: AppendWriter
        self.maintenance: Maintenance
        self.retention: Retention
        self.recovery_report: RecoveryReport
        self._readers = ThreadPoolExecutor(config.read_threads, thread_name_prefix="store-read")
        self._closed = False
        self._open_done = False
        self._loop_thread = threading.get_ident()
        self._pin_sources: list[Callable[[], int | None]] = []
        self._groups: list[AppendGroup] = []  # single appends of the current loop iteration

    # -- lifecycle -------------------------------------------------------------------------------
    @classmethod
    async def open(cls, config: StoreConfig) -> MessageStore:
        """Open (creating if needed) the store at ``config.root``, recovering if the last stop
        was unclean. Raises StoreLockedError if another process has it open."""
        config = await asyncio.to_thread(effective_config, config)
        store = cls(config, asyncio.get_running_loop())
        await asyncio.to_thread(store._open_sync)
        store.state = await StateStore.open(store.paths.state_db, durable=config.durability == "sync",
                                            clock_ms=config.clock_ms)
        store._start()
        return store

    def _open_sync(self) -> None:
        self.paths.make_dirs()
        self._lock_fd = os.open(self.paths.lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise StoreLockedError(f"{self.config.root} is in use by another store") from exc
        self.keys = KeyIndex(self.paths.key_index, durable=self.config.durability == "sync")
        self.recovery_report = recover(self.paths, self.config, self.commitlog, self.cqs, self.keys)
        self.usage = StoreUsage(self.cqs)  # bytes per namespace, from the recovered queues
        self.usage.refresh()
        # The abort marker exists exactly while the store is open.
        fd = os.open(self.paths.abort, os.O_WRONLY | os.O_CREAT, 0o644)
        os.fsync(fd)
        os.close(fd)
        self.config.file_ops.fsync_dir(self.paths.root)

    def _start(self) -> None:
        self.writer = AppendWriter(self.commitlog, self.cqs, self.config, self._loop, self.keys.submit)
        self.retention = Retention(self.config, self.commitlog, self.cqs, self.keys,
                                   pins=self._pins_any_thread)
        self.maintenance = Maintenance(self.paths, self.config, self.commitlog, self.writer,
                                       self.keys, retention=self._retention_now)
        self.keys.start()
        self.writer.start()
        self.maintenance.start()
        self._open_done = True

    async def close(self) -> None:
        """Refuse new appends, finish queued ones, flush everything, write the checkpoint and the
        clean-shutdown marker, close files. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._submit_groups()  # appends accepted before close are written, not dropped
        await asyncio.to_thread(self._close_sync)
        await self.state.close()
        self._readers.shutdown(wait=True)

    def _close_sync(self) -> None:
        self.writer.stop()
        self.maintenance.stop()
        self.keys.stop()
        ops = self.config.file_ops
        for cq in self.cqs.all():
            sync_queue(cq, ops)
        self.maintenance.checkpoint()
        self.keys.close()
        ops.unlink(self.paths.abort)
        ops.fsync_dir(self.paths.root)
        self.commitlog.close()
        self.cqs.close()
        os.close(self._lock_fd)

    async def __aenter__(self) -> MessageStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def writable_state(self) -> StoreState:
        if self._closed:
            return StoreState.CLOSED
        refusal = self.writer.refusal.status
        if refusal is AppendStatus.DISK_FULL:
            return StoreState.DISK_FULL
        if self.retention.cap_exceeded:
            return StoreState.STORAGE_CAP_EXCEEDED
        return StoreState.WRITABLE

    # -- appending -------------------------------------------------------------------------------
    def _refused(self) -> AppendResult | None:
        if self._closed:
            return _CLOSED
        refusal = self.writer.refusal
        if refusal.status is not None and self.config.clock_ms() < refusal.retry_at_ms:
            return AppendResult(refusal.status, detail=refusal.detail)
        if self.retention.cap_exceeded:
            return AppendResult(AppendStatus.STORAGE_CAP_EXCEEDED, detail=self.retention.cap_detail)
        return None

    async def append(self, msg: NewMessage) -> AppendResult:
        """Append one message; resolves after the write (async) or an fsync covering it (sync).

        Appends made in the same loop iteration join ``AppendGroup``s of up to ``GROUP_MAX``: one
        writer request and one future per group, each caller picking its own result by index.
        """
        if self._closed or self.writer.refusal.status is not None or self.retention.cap_exceeded:
            refused = self._refused()
            if refused is not None:
                return refused
        groups = self._groups
        if not groups:
            self._loop.call_soon(self._submit_groups)
            group = AppendGroup(self._loop.create_future())
            groups.append(group)
        else:
            group = groups[-1]
            if len(group.messages) >= GROUP_MAX:
                group = AppendGroup(self._loop.create_future())
                groups.append(group)
        msgs = group.messages
        index = len(msgs)
        msgs.append(msg)
        fut = group.fut
        try:
            return (await fut)[index]
        except asyncio.CancelledError:
            if own_cancellation(fut):
                raise
            return await group.wait_again(index)

    def _submit_groups(self) -> None:
        """Hand this iteration's groups to the writer, in order (end of the loop iteration, or
        close)."""
        groups = self._groups
        if groups:
            self._groups = []
            submit = self.writer.submit
            for group in groups:
                submit(group.messages, group)

    async def append_many(self, msgs: Sequence[NewMessage], *,
                          relocation: bool = False) -> list[AppendResult]:
        """Append a batch in order (one write, one fsync in sync mode); one result per message.

        ``relocation``: copies of pending records moved out of a segment retention wants to
        delete (``Retention.blocked_at``); they are accepted over the storage cap, since moving
        them is how the log gets back under it."""
        refused = self._refused()
        if refused is not None and not (
                relocation and refused.status is AppendStatus.STORAGE_CAP_EXCEEDED):
            return [refused] * len(msgs)
        if not msgs:
            return []
        fut: asyncio.Future[list[AppendResult]] = self._loop.create_future()
        self.writer.submit(list(msgs), fut)
        return await fut

    # -- reading ---------------------------------------------------------------------------------
    def queue_bounds(self, topic: str, queue_id: int) -> tuple[int, int]:
        """(min, max) logical offsets of a queue, max one past the last entry; (0, 0) if absent."""
        cq = self.cqs.get(topic, queue_id)
        return (cq.min_offset, cq.max_offset) if cq is not None else (0, 0)

    def queues(self, topic: str) -> list[int]:
        """Queue ids of ``topic`` that hold or held messages."""
        return sorted(self.cqs.by_topic.get(topic, {}))

    async def read(self, topic: str, queue_id: int, offset: int, max_count: int = 32,
                   max_bytes: int = 4 * MiB,
                   tag_filter: Callable[[int], bool] | None = None) -> ReadResult:
        """Up to ``max_count`` messages (and about ``max_bytes``) from ``offset`` on.

        With ``tag_filter`` (a predicate on the consume-queue tag hash) non-matching entries are
        skipped without reading the commit log; ``next_offset`` moves past them. Statuses:
        FOUND (possibly with zero messages if everything scanned was filtered out),
        NO_MESSAGE_YET (offset == max), OFFSET_TOO_SMALL (below min; next_offset = min),
        OFFSET_OVERFLOW (beyond max; next_offset = max), NO_SUCH_QUEUE, CORRUPTED (the record
        at ``offset`` fails validation; next_offset = offset + 1 skips it).
        """
        cq = self.cqs.get(topic, queue_id)
        if cq is None:
            return ReadResult(ReadStatus.NO_SUCH_QUEUE, [], offset, 0, 0)
        lo, hi = cq.min_offset, cq.max_offset
        if offset < lo:
            return ReadResult(ReadStatus.OFFSET_TOO_SMALL, [], lo, lo, hi)
        if offset == hi:
            return ReadResult(ReadStatus.NO_MESSAGE_YET, [], offset, lo, hi)
        if offset > hi:
            return ReadResult(ReadStatus.OFFSET_OVERFLOW, [], hi, lo, hi)
        if max_count <= 0:
            return ReadResult(ReadStatus.FOUND, [], offset, lo, hi)
        try:
            # Tailing consumers read what was just written: it is in the page cache, and a
            # read that cannot wait for the disk is cheaper here than a hop to a reader thread
            # and back (one fewer wake-up per receive).
            return self._read_sync(cq, offset, hi, max_count, max_bytes, tag_filter,
                                   cached_only=True)
        except NotCached:
            pass
        return await self._loop.run_in_executor(
            self._readers, self._read_sync, cq, offset, hi, max_count, max_bytes, tag_filter)

    def _read_sync(self, cq: ConsumeQueue, offset: int, hi: int, max_count: int, max_bytes: int,
                   tag_filter: Callable[[int], bool] | None,
                   cached_only: bool = False) -> ReadResult:
        """The read itself (a reader thread; or the loop with ``cached_only``, which reads from
        the page cache only and at most INLINE_READ_MAX of commit log, returning the messages
        within it, and raises ``NotCached`` when a read would wait for the disk or its first
        record alone exceeds that budget)."""
        scan = min(hi - offset, max_count if tag_filter is None else max(max_count, MAX_FILTER_SCAN))
        raw = cq.read_raw(offset, scan, cached_only)
        lo = cq.min_offset
        if not raw:
            return ReadResult(ReadStatus.OFFSET_TOO_SMALL, [], lo, lo, hi, "consume queue segment deleted")
        picked: list[tuple[int, int, int]] = []  # (queue offset, commitlog offset, size)
        next_offset = offset
        total = 0
        for i, (cl_off, size, th) in enumerate(ENTRY.iter_unpack(raw)):
            if tag_filter is not None and not tag_filter(th):
                next_offset = offset + i + 1
                continue
            if picked and total + size > max_bytes:
                break
            picked.append((offset + i, cl_off, size))
            total += size
            next_offset = offset + i + 1
            if len(picked) >= max_count:
                break
        messages: list[StoredMessage] = []
        cap = self.commitlog.capacity
        node = self.config.node_id
        read_bytes = 0
        i = 0
        while i < len(picked):
            if cached_only:
                # The loop reads at most INLINE_READ_MAX of commit log (records of interleaved
                # queues included) and returns what that holds; the caller reads on from
                # ``next_offset``. Only a read that cannot start within it goes to the threads.
                budget = INLINE_READ_MAX - read_bytes
                if picked[i][2] > budget:
                    if messages:
                        return ReadResult(ReadStatus.FOUND, messages, picked[i][0], cq.min_offset, hi)
                    raise NotCached
                j = _run_end(picked, i, cap, min(budget, _RUN_MAX_BYTES))
            else:
                j = _run_end(picked, i, cap)
            start = picked[i][1]
            length = picked[j - 1][1] + picked[j - 1][2] - start
            read_bytes += length
            data = (self.commitlog.read(start, length, cached_only)
                    if start >= self.commitlog.min_offset else b"")
            for qoff, cl_off, size in picked[i:j]:
                rel = cl_off - start
                problem = "commit-log segment deleted" if len(data) < rel + size else (
                    check_record(data, rel, rel + size) if size > 0 else "hole in consume queue")
                msg = None
                if problem is None:
                    msg = decode(data, rel, cl_off, node)
                    if msg.queue_offset != qoff or msg.queue_id != cq.queue_id or msg.topic != cq.topic:
                        problem = "record does not belong to this queue position"
                if problem is not None:
                    if messages:
                        return ReadResult(ReadStatus.FOUND, messages, qoff, cq.min_offset, hi)
                    if data == b"" and size > 0 and problem == "commit-log segment deleted":
                        lo = cq.min_offset
                        return ReadResult(ReadStatus.OFFSET_TOO_SMALL, [], max(lo, qoff + 1), lo, hi, problem)
                    return ReadResult(ReadStatus.CORRUPTED, [], qoff + 1, cq.min_offset, hi,
                                      f"queue offset {qoff} (commit-log offset {cl_off}): {problem}")
                messages.append(msg)  # type: ignore[arg-type]
            i = j
        return ReadResult(ReadStatus.FOUND, messages, next_offset, cq.min_offset, hi)

    async def get_by_commitlog_offset(self, offset: int) -> StoredMessage | None:
        """The message whose record starts at ``offset``, or None (gone, never written, invalid)."""
        if offset < self.commitlog.min_offset or offset >= self.writer.committed_pos:
            return None
        return await self._loop.run_in_executor(self._readers, self._get_sync, offset)

    def _get_sync(self, offset: int) -> StoredMessage | None:
        data = self.commitlog.read(offset, _PROBE_BYTES)
        if len(data) < HEADER_SIZE:
            return None
        total, magic, _crc = PREFIX.unpack_from(data, 0)
        if magic == BLANK_MAGIC:
            return None
        if total > len(data):
            data = self.commitlog.read(offset, total)
        if check_record(data, 0, len(data)) is not None:
            return None
        return decode(data, 0, offset, self.config.node_id)

    async def get_by_id(self, msg_id: str) -> StoredMessage | None:
        """The message with this id (ids encode node id + commit-log offset), or None."""
        try:
            mid = decode_message_id(msg_id)
        except InvalidMessageIdError:
            return None
        if mid.node_id != self.config.node_id:
            return None
        return await self.get_by_commitlog_offset(mid.commitlog_offset)

    async def find_by_key(self, topic: str, key: str, limit: int = 32) -> list[StoredMessage]:
        """Newest-first messages of ``topic`` carrying ``key`` that are still stored."""
        offsets = await self._loop.run_in_executor(self._readers, self.keys.lookup, topic, key, limit)
        found = []
        for off in offsets:
            msg = await self.get_by_commitlog_offset(off)
            if msg is not None and key in msg.keys:
                found.append(msg)
        return found

    async def offset_for_time(self, topic: str, queue_id: int, ts_ms: int) -> int:
        """The first queue offset whose message was stored at or after ``ts_ms`` (max if none)."""
        cq = self.cqs.get(topic, queue_id)
        if cq is None:
            return 0
        return await self._loop.run_in_executor(self._readers, self._offset_for_time_sync, cq, ts_ms)

    def _offset_for_time_sync(self, cq: ConsumeQueue, ts_ms: int) -> int:
        lo, hi = cq.min_offset, cq.max_offset
        while lo < hi:
            mid = (lo + hi) // 2
            ts = self._store_ts_at(cq, mid)
            if ts is None or ts >= ts_ms:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def _store_ts_at(self, cq: ConsumeQueue, n: int) -> int | None:
        entry = cq.entry(n)
        if entry is None:
            return None
        head = self.commitlog.read(entry[0], HEADER_SIZE)
        if len(head) < HEADER_SIZE:
            return None
        return FIXED.unpack_from(head, PREFIX.size)[3]  # type: ignore[no-any-return]

    # -- retention -------------------------------------------------------------------------------
    def add_pin_source(self, source: Callable[[], int | None]) -> None:
        """Register another holder of pending messages (called on the event loop; returns the
        lowest commit-log offset it still needs, or None). Retention never deletes at/after it."""
        self._pin_sources.append(source)

    def pins(self) -> int | None:
        """Lowest pinned commit-log offset over ``state`` and every registered source."""
        found = [p for p in [self.state.pins(), *(src() for src in self._pin_sources)] if p is not None]
        return min(found) if found else None

    def _pins_any_thread(self) -> int | None:
        # Pin sources live on the event loop; evaluate them there, not on the retention thread.
        if threading.get_ident() == self._loop_thread:
            return self.pins()

        async def on_loop() -> int | None:
            return self.pins()

        return asyncio.run_coroutine_threadsafe(on_loop(), self._loop).result(timeout=30)

    def _retention_now(self) -> RetentionReport:
        return self.retention.run(self.config.clock_ms())

    def retention_blocked_at(self) -> int | None:
        """The pinned commit-log offset that kept the last retention run from deleting a
        segment that was due (None when nothing due was kept)."""
        return self.retention.blocked_at

    def segment_end(self, offset: int) -> int:
        """End offset of the commit-log segment that holds ``offset``."""
        return self.commitlog.files.base_for(offset) + self.commitlog.capacity

    async def enforce_retention(self, now_ms: int | None = None) -> RetentionReport:
        """Delete whole commit-log segments past retention or over the storage cap (see
        docs/storage.md "Retention"); advances consume-queue minimum offsets."""
        if self._closed:
            raise StoreClosedError("store is closed")
        now = self.config.clock_ms() if now_ms is None else now_ms
        return await asyncio.to_thread(self.retention.run, now)

    @property
    def end_offset(self) -> int:
        """Commit-log offset one past the last committed record."""
        return self.writer.committed_pos

    def stats(self) -> dict[str, Any]:
        """Cheap counters for metrics (no I/O)."""
        return {
            "commitlog_min_offset": self.commitlog.min_offset,
            "commitlog_max_offset": self.writer.committed_pos,
            "commitlog_bytes": self.commitlog.files.total_bytes(),
            "write_batches": self.writer.batches,
            "queues": len(self.cqs.by_key),
            "checkpoints": self.maintenance.checkpoints,
        }
