"""Open-time recovery: decide where to replay from, cut a torn tail, rebuild derived data.

Rule: the checkpoint's ``dispatched_offset`` D promises that every record below D is durable in
the commit log and has durable consume-queue entries and key-index rows. So on every open (clean
or not) the store

1. cuts each consume queue back to the entries that point below D, and the key index to rows
   below D;
2. scans the commit log from D validating each record (``CommitLog.scan``), cutting a torn tail
   in the last segment;
3. re-dispatches every good record it met (consume-queue entry + key rows);
4. makes all of that durable and writes a new checkpoint at the end of the log.

After a clean shutdown D is the end of the log, so steps 2-3 find nothing. Without a (valid)
checkpoint D is the start of the oldest segment: a full rebuild.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .checkpoint import Checkpoint, read_checkpoint, write_checkpoint
from .commitlog import CommitLog
from .config import StoreConfig
from .consumequeue import ENTRY, ConsumeQueue, ConsumeQueues, tag_hash
from .errors import CheckpointError
from .keyindex import KeyIndex
from .model import RecoveryReport
from .paths import StorePaths
from .record import dispatch_info


@dataclass
class _Replayer:
    cqs: ConsumeQueues
    keys: KeyIndex
    pending: dict[ConsumeQueue, list[object]] = field(default_factory=dict)
    key_rows: list[tuple[str, str, int, int]] = field(default_factory=list)
    touched: set[ConsumeQueue] = field(default_factory=set)

    def __call__(self, offset: int, buf: bytes, pos: int) -> None:
        topic, queue_id, queue_offset, size, stored, tag, keys = dispatch_info(buf, pos)
        cq = self.cqs.get_or_create(topic, queue_id)
        if queue_offset < cq.next_offset:
            return  # already indexed (cannot happen after the cut, kept as a guard)
        if queue_offset > cq.next_offset:
            self._flush(cq)
            if cq.next_offset == cq.min_offset:
                cq.min_offset = queue_offset  # queue rebuilt from a later start
            cq.next_offset = queue_offset
        entry = ENTRY.pack(offset, size, tag_hash(tag))
        buf_ = self.pending.get(cq)
        if buf_ is None:
            self.pending[cq] = [queue_offset, bytearray(entry)]
        else:
            buf_[1] += entry  # type: ignore[operator]
        cq.next_offset = queue_offset + 1
        for key in keys:
            self.key_rows.append((topic, key, offset, stored))
        if len(self.key_rows) > 10_000:
            self.keys.add_now(self.key_rows)
            self.key_rows = []
        if len(self.pending) > 256:
            self.flush_all()

    def _flush(self, cq: ConsumeQueue) -> None:
        item = self.pending.pop(cq, None)
        if item is not None:
            cq.write(item[0], item[1])  # type: ignore[arg-type]
            self.touched.add(cq)

    def flush_all(self) -> None:
        for cq in list(self.pending):
            self._flush(cq)
        self.keys.add_now(self.key_rows)
        self.key_rows = []


def recover(paths: StorePaths, config: StoreConfig, commitlog: CommitLog, cqs: ConsumeQueues,
            keys: KeyIndex) -> RecoveryReport:
    """Bring log, queues and key index to a consistent state; see the module docstring."""
    clean = not paths.abort.exists()
    notes: list[str] = ["clean shutdown" if clean else "unclean shutdown (abort marker present)"]
    try:
        cp = read_checkpoint(paths.checkpoint)
    except CheckpointError as exc:
        cp = None
        notes.append(f"{exc}: full replay")
    commitlog.load()
    first, last = commitlog.files.first(), commitlog.files.last()
    cap = commitlog.capacity
    if first is None or last is None:
        d = cp.dispatched_offset if cp else 0
        start = d if d % cap == 0 else commitlog.files.base_for(d) + cap
    elif cp is None or cp.dispatched_offset < first.base:
        start = first.base
    elif cp.dispatched_offset > last.base + cap or (
        cp.dispatched_offset > last.end and cp.dispatched_offset >= last.base):
        notes.append("commit log is shorter than the checkpoint says: rescanning its last segment")
        start = last.base
    else:
        start = cp.dispatched_offset
    cl_min = first.base if first is not None else start
    dropped = cqs.load_all(keep_below=start, commitlog_min=cl_min)
    keys.drop_from(start)
    end_before = last.end if last is not None else start
    replayer = _Replayer(cqs, keys)
    scan = commitlog.scan(start, replayer)
    replayer.flush_all()
    for cq in cqs.all():
        cq.max_offset = cq.next_offset
    for cq in replayer.touched:
        for seg in cq.files.segments:
            config.file_ops.fdatasync(seg.fd)
    tail = commitlog.files.last()
    if tail is not None:
        config.file_ops.fdatasync(tail.fd)
    end = commitlog.write_pos
    write_checkpoint(paths.checkpoint, Checkpoint(end, end, config.clock_ms()))
    for at, why in scan.corrupt:
        notes.append(f"corrupt record at {at} ({why}): rest of that segment not indexed")
    if scan.torn_at is not None:
        notes.append(f"torn tail at {scan.torn_at}: {scan.torn_reason}")
    return RecoveryReport(
        clean=clean,
        checkpoint_offset=cp.dispatched_offset if cp else -1,
        replay_start=start,
        end_offset=end,
        records_replayed=scan.records,
        bytes_truncated=max(0, end_before - end) if scan.torn_at is not None else 0,
        truncated_at=scan.torn_at,
        reason="; ".join(notes),
        consume_queue_entries_dropped=dropped,
    )
