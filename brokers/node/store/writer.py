"""The append pipeline: one writer thread turns queued appends into few large writes.

Callers (on the event loop) put ``(messages, future)`` on a queue and await the future, which
receives one result per message (``MessageStore.append`` coalesces the single appends of one loop
iteration into one such request; see ``store.AppendGroup``).
The writer thread drains everything queued, encodes all records of the batch in one pass
(queue offsets are assigned here, so commit-log order = queue order), writes them with one
``pwrite`` per segment touched, writes the consume-queue entries of the batch (one ``pwrite`` per
queue). ``async`` mode publishes and resolves right after the write; ``sync`` mode hands the
chunk to the group-commit thread (``groupcommit.py``), which fdatasyncs, publishes and resolves
while this thread writes the next requests (pipelined group commit). All futures of a batch are
resolved with a single ``loop.call_soon_threadsafe``. Disk calls never run on the event loop.
The active segment is preallocated ahead of the writes (``_preallocate``).

A batch is committed in chunks that end at segment rolls; each chunk is written, published
(``ConsumeQueue.max_offset``) and acknowledged as a unit, or rolled back as a unit when the disk
refuses it (ENOSPC -> DISK_FULL, other OSError -> IO_ERROR).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from .commitlog import CommitLog
from .config import StoreConfig
from .consumequeue import ENTRY, ConsumeQueue, ConsumeQueues, tag_hash
from .groupcommit import CHUNK, PAIRS, GroupCommit
from .model import AppendResult, AppendStatus, NewMessage
from .record import (
    BLANK, BLANK_MAGIC, BLANK_SIZE, FIXED, HEADER_SIZE, INLINE_BODY_MAX, MESSAGE_MAGIC, PREFIX,
    InvalidProperties, encode_properties, record_crc,
)
from .segments import Segment
from .topics import MAX_STORED_TOPIC_BYTES, topic_problem

_STOP: Final = object()
_SYNC_FAILED: Final = object()  # put on the writer's queue by the group-commit thread
log = logging.getLogger(__name__)
MAX_BATCH_MESSAGES: Final = 8192
PREALLOCATE_BYTES: Final = 32 * 1024 * 1024

KeyRows = list[tuple[str, str, int, int]]  # (topic, key, commitlog_offset, store_ts)
KeySink = Callable[[KeyRows | None, int], None]


class Resolvable(Protocol):
    """What a request is resolved through: an ``asyncio.Future`` or anything shaped like one."""

    def done(self) -> bool: ...

    def set_result(self, result: list[AppendResult], /) -> None: ...


@dataclass
class _Chunk:
    """The part of a batch written to one segment."""

    seg: Segment
    start: int
    parts: list[bytes]
    cq_bufs: dict[ConsumeQueue, list[Any]]  # cq -> [first offset, bytearray of entries]
    key_rows: KeyRows
    # (result list, index of its first result in this chunk): OK results from there on belong to
    # this chunk (or to later messages, which are refused anyway if this chunk fails).
    slots: list[tuple[list[AppendResult], int]]
    count: int = 0
    end: int = 0  # set when written: where the next chunk starts


# Stand-in segment while no segment file could be created (every append is refused meanwhile).
_NO_SEGMENT: Final = Segment(0, Path("/nonexistent"), -1, 0)


class DiskRefusal:
    """The writer's current refusal (disk full / I/O error), read by the loop without locks."""

    def __init__(self) -> None:
        self.status: AppendStatus | None = None
        self.detail = ""
        self.retry_at_ms = 0


class AppendWriter:
    """Owns the commit-log write position and every consume-queue append. One thread."""

    def __init__(self, commitlog: CommitLog, cqs: ConsumeQueues, config: StoreConfig,
                 loop: asyncio.AbstractEventLoop, key_sink: KeySink) -> None:
        self.commitlog = commitlog
        self.cqs = cqs
        self.config = config
        self.loop = loop
        self.key_sink = key_sink
        self.ops = config.file_ops
        self.sync = config.durability == "sync"
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.committed_pos = commitlog.write_pos  # everything below is written and published
        self.synced_pos = commitlog.write_pos  # everything below is fdatasync'ed (sync mode)
        self.dirty_cqs: set[ConsumeQueue] = set()  # queues written since the last checkpoint
        self.dirty_lock = threading.Lock()
        self.refusal = DiskRefusal()
        self.batches = 0
        self._topic_bytes: dict[str, bytes | None] = {}
        self._host_bytes: dict[str, bytes] = {}
        # Preallocation (see _preallocate): the segment and relative offset allocated up to.
        self._prealloc_seg: Segment | None = None
        self._prealloc_to = 0
        self._prealloc_on = True
        # sync mode: fdatasync + publish + resolve on their own thread (see groupcommit.py)
        self.group_commit: GroupCommit | None = None
        if self.sync:
            self.group_commit = GroupCommit(self.ops, loop, self._publish, _resolve,
                                            lambda: self.queue.put(_SYNC_FAILED))
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)

    def start(self) -> None:
        if self.group_commit is not None:
            self.group_commit.start()
        self._thread.start()

    def stop(self) -> None:
        """Process everything queued so far, then end the thread."""
        self.queue.put(_STOP)
        self._thread.join()

    # -- loop side ---------------------------------------------------------------------------
    def submit(self, messages: list[NewMessage], fut: Resolvable) -> None:
        self.queue.put((messages, fut))

    # -- writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        q = self.queue
        gc = self.group_commit
        stopping = False
        while not stopping:
            batch: list[Any] = []
            count = 0
            sync_failed = False
            item = q.get()
            while True:
                if item is _STOP:
                    stopping = True
                    break
                if item is _SYNC_FAILED:
                    sync_failed = True
                else:
                    batch.append(item)
                    count += len(item[0])
                    # sync: with the fsync thread idle, write what is there now so the disk
                    # starts at once; what arrives meanwhile is written while that fsync runs.
                    if count >= MAX_BATCH_MESSAGES or (gc is not None and gc.idle):
                        break
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    break
            if sync_failed:
                self._sync_failed(None)
            if not batch:
                continue
            try:
                self._process(batch)
            except Exception as exc:  # a bug, not a disk refusal: fail the batch, keep serving
                log.exception("store writer failed a batch")
                self._refuse(OSError(errno.EIO, f"writer error: {exc!r}"), self.config.clock_ms())
                self._fail_all(batch, exc)
        if gc is not None:
            if gc.barrier():
                self._sync_failed(None)
            gc.stop()

    def _fail_all(self, batch: list[Any], exc: BaseException) -> None:
        res = AppendResult(AppendStatus.IO_ERROR, detail=f"writer failed: {exc!r}")
        pairs = [(fut, [res] * len(msgs)) for msgs, fut in batch]
        self.loop.call_soon_threadsafe(_resolve, pairs)

    def _topic_b(self, topic: str) -> bytes | None:
        tb = self._topic_bytes.get(topic)
        if tb is None and topic not in self._topic_bytes:
            ok = topic_problem(topic) is None
            tb = topic.encode() if ok else None
            if tb is not None and len(tb) > MAX_STORED_TOPIC_BYTES:
                tb = None
            self._topic_bytes[topic] = tb
        return tb

    def _host_b(self, host: str) -> bytes:
        hb = self._host_bytes.get(host)
        if hb is None:
            hb = host.encode()
            if len(self._host_bytes) < 65536:
                self._host_bytes[host] = hb
        return hb

    def _process(self, batch: list[Any]) -> None:
        self.batches += 1
        now = self.config.clock_ms()
        node_id = self.config.node_id  # the message id is derived from it on first read
        cap = self.commitlog.capacity
        max_body = self.config.max_message_bytes
        max_record = cap - BLANK_SIZE
        pos = self.commitlog.write_pos
        refused: AppendResult | None = self._refusal_result(now)
        try:
            seg = self._segment_for(pos)
        except OSError as exc:  # e.g. ENOSPC creating the next segment file
            seg = _NO_SEGMENT
            refused = self._refuse(exc, now)
        seg_end = seg.base + cap
        chunk = _Chunk(seg, pos, [], {}, [], [])
        outputs: list[list[AppendResult]] = []
        # Everything the per-message loop touches is a local: this loop is the writer's hot path
        # (records are encoded inline: a call per record was a measurable share of it).
        topic_cache = self._topic_bytes
        cqs_get = self.cqs.by_key.get
        pack_entry = ENTRY.pack
        fixed_pack = FIXED.pack
        prefix_pack = PREFIX.pack
        crc32 = record_crc
        OK = AppendStatus.OK
        new_result = tuple.__new__  # AppendResult's private layout, see model.AppendResult
        parts_append = chunk.parts.append
        cq_bufs = chunk.cq_bufs
        count = 0
        for messages, _fut in batch:
            out: list[AppendResult] = []
            outputs.append(out)
            chunk.slots.append((out, 0))
            out_append = out.append
            for msg in messages:
                if refused is not None:
                    out_append(refused)
                    continue
                topic = msg.topic
                tb = topic_cache.get(topic)
                if tb is None:
                    tb = self._topic_b(topic)
                queue_id = msg.queue_id
                if tb is None or queue_id < 0:
                    out_append(AppendResult(AppendStatus.INVALID_TOPIC, detail=_topic_detail(topic, queue_id)))
                    continue
                tag = msg.tag
                keys = msg.keys
                if tag or keys or msg.properties:
                    try:
                        pb = encode_properties(tag, keys, msg.properties)
                    except InvalidProperties as exc:
                        out_append(AppendResult(AppendStatus.INVALID_PROPERTIES, detail=str(exc)))
                        continue
                    hth = tag_hash(tag) if tag else 0
                else:
                    pb = b""
                    hth = 0
                hb = self._host_b(msg.born_host) if msg.born_host else b""
                body = msg.body
                body_len = len(body)
                size = HEADER_SIZE + len(tb) + len(hb) + len(pb) + body_len
                if body_len > max_body or size > max_record:
                    out_append(AppendResult(
                        AppendStatus.MESSAGE_TOO_LARGE,
                        detail=f"body {body_len} bytes, record {size} bytes; limits: body "
                               f"{max_body}, record {max_record}"))
                    continue
                if pos + size > seg_end:
                    chunk.count += count
                    count = 0
                    refused = self._commit(chunk, pos, seal=True)
                    if refused is not None:
                        out_append(refused)
                        continue
                    pos = seg_end
                    try:
                        seg = self._segment_for(pos)
                    except OSError as exc:
                        refused = self._refuse(exc, now)
                        out_append(refused)
                        continue
                    seg_end = seg.base + cap
                    chunk = _Chunk(seg, pos, [], {}, [], [(out, len(out))])
                    parts_append = chunk.parts.append
                    cq_bufs = chunk.cq_bufs
                cq = cqs_get((topic, queue_id))
                if cq is None:
                    cq = self.cqs.get_or_create(topic, queue_id)
                qoff = cq.next_offset
                cq.next_offset = qoff + 1
                # The record (see record.py for the layout); bodies up to INLINE_BODY_MAX are
                # copied into the header buffer, larger ones go to pwritev as their own iovec.
                head = fixed_pack(queue_id, qoff, msg.born_timestamp_ms, now, msg.flags,
                                  msg.reconsume_times, len(tb), len(hb), len(pb), body_len) + tb
                if hb or pb:
                    head = head + hb + pb
                if body_len <= INLINE_BODY_MAX:
                    head += body
                    parts_append(prefix_pack(size, MESSAGE_MAGIC, crc32(head)) + head)
                else:
                    parts_append(prefix_pack(size, MESSAGE_MAGIC, crc32(body, crc32(head))) + head)
                    parts_append(body)
                buf = cq_bufs.get(cq)
                if buf is None:
                    cq_bufs[cq] = [qoff, bytearray(pack_entry(pos, size, hth))]
                else:
                    buf[1] += pack_entry(pos, size, hth)
                if keys:
                    for k in keys:
                        chunk.key_rows.append((topic, k, pos, now))
                count += 1
                out_append(new_result(AppendResult, (OK, None, pos, qoff, now, "", node_id)))
                pos += size
        chunk.count += count
        if chunk.count:
            self._commit(chunk, pos, seal=False)
        pairs = [(item[1], out) for item, out in zip(batch, outputs)]
        if self.group_commit is not None:
            self.group_commit.put_pairs(pairs)  # resolved after the fsync covering them
        else:
            self.loop.call_soon_threadsafe(_resolve, pairs)

    def _segment_for(self, pos: int) -> Segment:
        seg = self.commitlog.files.last()
        if seg is not None and seg.base <= pos < seg.base + self.commitlog.capacity:
            return seg
        return self.commitlog.files.create(self.commitlog.files.base_for(pos))

    def _commit(self, chunk: _Chunk, end: int, seal: bool) -> AppendResult | None:
        """Write one chunk; then fsync + publish it here (async mode; a segment's last chunk) or
        hand it to the group-commit thread (sync mode). On OSError roll it back and return the
        refusal."""
        seg = chunk.seg
        gc = self.group_commit
        if seal:
            room = seg.base + self.commitlog.capacity - end
            if room >= BLANK_SIZE:
                chunk.parts.append(BLANK.pack(room, BLANK_MAGIC))
            # The next segment is written only once this one is wholly synced (recovery relies
            # on it): wait for the chunks handed over before; sync this one here.
            if gc is not None and gc.barrier():
                return self._sync_failed(chunk)
        if not chunk.parts:
            chunk.slots.clear()
            return None
        new_end = seg.base + self.commitlog.capacity if seal else end
        if self._prealloc_on:
            self._preallocate(seg, chunk.start - seg.base, new_end - seg.base)
        try:
            self.ops.pwritev(seg.fd, chunk.parts, chunk.start - seg.base)
            for cq, (first, buf) in chunk.cq_bufs.items():
                cq.write(first, buf)
            if seal or (self.sync and gc is None):
                self.ops.fdatasync(seg.fd)
        except OSError as exc:
            self._rollback(chunk)
            refusal = self._refuse(exc, self.config.clock_ms())
            _refuse_chunk(chunk, refusal)
            return refusal
        self.commitlog.write_pos = new_end
        chunk.end = new_end
        if self.refusal.status is not None:
            self.refusal.status = None  # the disk took a write again: recovered
            self.refusal.detail = ""
        if gc is not None and not seal:
            gc.put_chunk(chunk)
        else:
            self._publish(chunk)
        return None

    def _publish(self, chunk: _Chunk) -> None:
        """Make a written (and, in sync mode, synced) chunk visible: queue bounds, positions,
        key rows. Writer thread, or the group-commit thread for the chunks it syncs."""
        new_end = chunk.end
        seg = chunk.seg
        seg.written = new_end - seg.base
        for cq, (first, buf) in chunk.cq_bufs.items():
            cq.max_offset = first + len(buf) // ENTRY.size
        with self.dirty_lock:  # before committed_pos moves: see Maintenance.checkpoint
            self.dirty_cqs.update(chunk.cq_bufs)
        chunk.slots.clear()
        chunk.count = 0
        self.committed_pos = new_end
        if self.sync or new_end == seg.base + self.commitlog.capacity:
            self.synced_pos = new_end
        self.key_sink(chunk.key_rows or None, new_end)

    def _sync_failed(self, current: _Chunk | None) -> AppendResult | None:
        """An fdatasync of the group-commit thread failed: roll back every chunk written since
        the last good one (the parked ones, then ``current`` if given, not yet written), refuse
        their appends, resolve the parked batches. Writer thread only."""
        gc = self.group_commit
        assert gc is not None
        gc.barrier()
        exc, items = gc.take_failure()
        if exc is None:
            return None
        refusal = self._refuse(exc, self.config.clock_ms())
        chunks: list[_Chunk] = [obj for kind, obj in items if kind == CHUNK]
        if current is not None:
            chunks.append(current)
        if chunks:
            first = chunks[0]
            self._rollback_to(first.seg, first.start)
            rolled: set[ConsumeQueue] = set()
            for chunk in chunks:
                for cq, (first_entry, _buf) in chunk.cq_bufs.items():
                    if cq not in rolled:  # its earliest entry among the failed chunks
                        rolled.add(cq)
                        cq.rollback(first_entry)
                _refuse_chunk(chunk, refusal)
            self.commitlog.write_pos = first.start
        pairs = [pair for kind, obj in items if kind == PAIRS for pair in obj]
        if pairs:
            self.loop.call_soon_threadsafe(_resolve, pairs)
        return refusal

    def _preallocate(self, seg: Segment, start: int, end: int) -> None:
        """Reserve the segment's blocks ahead of the writes (``fallocate`` keeping the file
        size): extending a file block by block is a large share of the kernel's cost per write
        (see docs/storage.md, Performance). Best effort: a failure only skips it."""
        if seg is self._prealloc_seg and end <= self._prealloc_to:
            return
        if seg is self._prealloc_seg:
            start = max(start, self._prealloc_to)
        length = min(self.commitlog.capacity - start, max(PREALLOCATE_BYTES, end - start))
        if length <= 0:
            return
        try:
            self.ops.preallocate(seg.fd, start, length)
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                self._prealloc_on = False  # not supported here
            return
        self._prealloc_seg = seg
        self._prealloc_to = start + length

    def _rollback(self, chunk: _Chunk) -> None:
        self._rollback_to(chunk.seg, chunk.start)
        for cq, (first, _buf) in chunk.cq_bufs.items():
            cq.rollback(first)

    def _rollback_to(self, seg: Segment, pos: int) -> None:
        try:
            self.ops.ftruncate(seg.fd, pos - seg.base)
        except OSError:
            pass  # bytes past write_pos are overwritten by the next chunk or cut by recovery
        self._prealloc_seg = None  # the truncation freed the preallocated blocks too

    def _refuse(self, exc: OSError, now_ms: int) -> AppendResult:
        status = AppendStatus.DISK_FULL if exc.errno == errno.ENOSPC else AppendStatus.IO_ERROR
        detail = (f"{'disk full' if status is AppendStatus.DISK_FULL else 'I/O error'} writing the "
                  f"commit log: {exc.strerror or exc}; writes refused, reads still served, retrying "
                  f"after {self.config.disk_full_retry_s:g}s")
        self.refusal.detail = detail
        self.refusal.retry_at_ms = now_ms + int(self.config.disk_full_retry_s * 1000)
        self.refusal.status = status
        return AppendResult(status, detail=detail)

    def _refusal_result(self, now_ms: int) -> AppendResult | None:
        r = self.refusal
        if r.status is not None and now_ms < r.retry_at_ms:
            return AppendResult(r.status, detail=r.detail)
        return None


def _resolve(pairs: list[tuple[Resolvable, list[AppendResult]]]) -> None:
    for fut, value in pairs:
        if not fut.done():
            fut.set_result(value)


def _topic_detail(topic: str, queue_id: int) -> str:
    if queue_id < 0:
        return f"queue id {queue_id} is negative"
    return f"invalid topic {topic!r}: {topic_problem(topic) or 'name too long'}"


def _refuse_chunk(chunk: _Chunk, refusal: AppendResult) -> None:
    """Turn every still-OK result of a chunk that never became durable into ``refusal``; the
    chunk is then empty."""
    for out, first in chunk.slots:
        for i in range(first, len(out)):
            if out[i].status is AppendStatus.OK:
                out[i] = refusal
    chunk.slots.clear()
    chunk.count = 0
