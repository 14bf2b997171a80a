"""Per-namespace storage usage: bytes of the records each namespace still holds in the store.

Derived from the consume queues, which survive restarts (and are rebuilt by recovery), so the
figure does too: for every queue, the sum of the record sizes of its entries in
``[min_offset, max_offset)``. Kept incrementally per queue as ``(lo, hi, bytes)``:

* the queue grew (``max_offset > hi``): the sizes of the new entries are added;
* retention moved ``min_offset`` past ``lo``: the sizes of the dropped entries are subtracted
  while their consume-queue file still exists, otherwise the queue is recounted from scratch
  (retention deletes whole segments, so this is rare and bounded by the queue's length).

Internal topics (``<ns>%%SYS%...``, ``<ns>%%DLQ%<group>``) count towards their namespace. Sizes are
whole record sizes (headers, properties and body), i.e. what the namespace occupies on disk.

``refresh`` (the whole store) runs once at open, before the writer starts; afterwards every call
is made on the event loop (readers only touch entries below ``max_offset``, which is safe while
the writer appends).
"""

from __future__ import annotations

from typing import Final

from .consumequeue import ENTRY, ENTRY_SIZE, ConsumeQueue, ConsumeQueues

_CHUNK: Final = 16384  # entries per read


def _sum_sizes(cq: ConsumeQueue, first: int, end: int) -> int | None:
    """Sum of entry sizes in [first, end); None if part of that range is no longer on disk."""
    total = 0
    pos = first
    while pos < end:
        n = min(_CHUNK, end - pos)
        raw = cq.read_raw(pos, n)
        if len(raw) < n * ENTRY_SIZE:
            return None
        total += sum(size for _cl, size, _th in ENTRY.iter_unpack(raw))
        pos += n
    return total


class StoreUsage:
    """Bytes per namespace (see the module docstring)."""

    def __init__(self, cqs: ConsumeQueues) -> None:
        self._cqs = cqs
        self._queues: dict[tuple[str, int], list[int]] = {}  # key -> [lo, hi, bytes]
        self._by_ns: dict[str, list[ConsumeQueue]] = {}
        self._known = -1  # number of queues when _by_ns was built

    def _sync(self, cq: ConsumeQueue) -> int:
        lo_now, hi_now = cq.min_offset, cq.max_offset
        key = (cq.topic, cq.queue_id)
        acc = self._queues.get(key)
        if acc is None or hi_now < acc[1] or lo_now < acc[0]:
            acc = self._queues[key] = [lo_now, lo_now, 0]
        lo, hi, total = acc
        if lo_now > lo:
            dropped = _sum_sizes(cq, lo, min(lo_now, hi))
            if dropped is None:  # its file is gone already: recount what remains
                lo, hi, total = lo_now, lo_now, 0
            else:
                total -= dropped
                lo = lo_now
                hi = max(hi, lo_now)
        if hi_now > hi:
            added = _sum_sizes(cq, hi, hi_now)
            if added is None:  # raced with retention; count again next time
                acc[:] = [lo, hi, total]
                return total
            total += added
            hi = hi_now
        acc[:] = [lo, hi, total]
        return total

    def _namespace_queues(self) -> dict[str, list[ConsumeQueue]]:
        if self._known != len(self._cqs.by_key):
            by_ns: dict[str, list[ConsumeQueue]] = {}
            for cq in self._cqs.all():
                by_ns.setdefault(cq.topic.partition("%")[0], []).append(cq)
            self._by_ns, self._known = by_ns, sum(len(q) for q in by_ns.values())
        return self._by_ns

    def namespace_bytes(self, namespace: str) -> int:
        """Bytes ``namespace`` holds now (cheap: reads only entries appended since last time)."""
        return sum(self._sync(cq) for cq in self._namespace_queues().get(namespace, ()))

    def by_namespace(self) -> dict[str, int]:
        """Bytes of every namespace with at least one queue."""
        return {ns: sum(self._sync(cq) for cq in queues)
                for ns, queues in self._namespace_queues().items()}

    def refresh(self) -> None:
        """Bring every queue up to date (at open: counts the whole store once)."""
        self.by_namespace()
