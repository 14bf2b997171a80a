"""A small, bounded, in-memory log of per-delivery events (for the admin "trace" query).

The engine's durable state answers "where is the group's committed offset" and "which entries
are in flight", but forgets *who* received a message once it is acked. This ring keeps the last
events: ``delivered`` (group, client, attempt), ``acked``, ``dead_lettered``.

Write-cheap, query-by-scan: the hot path appends one tuple to a bounded deque (a receive of 32
messages appends *one* record naming all 32 offsets, an ack one record), and ``events`` scans
the ring for a message (admin queries only; tens of ms for a full ring). Bounds: the last
``max_records`` records (at most ``max_records * 32`` delivery events; a batch record shares the
batch's offset and attempt lists, ~25 MB for a full ring of 32-message records), and
``max_events`` events per message in an answer. In memory only: a restart forgets it, and the trace then falls back to
what the durable state knows (committed offsets, in-flight entries, DLQ copies).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any, Final

TraceKey = tuple[str, int, int]  # (stored topic, queue id, queue offset)

DEFAULT_MAX_RECORDS: Final = 32_768
DEFAULT_MAX_EVENTS: Final = 16

# Record: (event, group, topic, queue id, offsets, client id, attempts, time ms). ``offsets`` and
# ``attempts`` are sequences of equal length (one entry for single events); they are kept by
# reference and must not be mutated afterwards (the engine's batch lists never are).
_Record = tuple[str, str, str, int, Sequence[int], str, Sequence[int], int]


class DeliveryTrace:
    def __init__(self, max_records: int = DEFAULT_MAX_RECORDS,
                 max_events: int = DEFAULT_MAX_EVENTS, *,
                 max_messages: int | None = None) -> None:
        if max_messages is not None:  # the old name of the bound
            max_records = max_messages
        self.max_records = max_records
        self.max_events = max_events
        self._events: deque[_Record] = deque(maxlen=max_records)

    def record(self, event: str, *, group: str, topic: str, queue_id: int, offset: int,
               client_id: str = "", attempt: int = 0, time_ms: int = 0) -> None:
        self._events.append((event, group, topic, queue_id, (offset,), client_id, (attempt,),
                             time_ms))

    def record_many(self, event: str, group: str, topic: str, queue_id: int,
                    offsets: Sequence[int], client_id: str, attempts: Sequence[int],
                    time_ms: int) -> None:
        """One record for several messages of one queue (e.g. one receive's batch)."""
        self._events.append((event, group, topic, queue_id, offsets, client_id, attempts,
                             time_ms))

    def events(self, topic: str, queue_id: int, offset: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event, group, t, q, offsets, client_id, attempts, time_ms in self._events:
            if q != queue_id or t != topic:
                continue
            if len(offsets) == 1:
                if offsets[0] != offset:
                    continue
                attempt = attempts[0]
            else:
                try:
                    attempt = attempts[offsets.index(offset)]
                except ValueError:
                    continue
            out.append({"event": event, "group": group, "client_id": client_id,
                        "attempt": attempt, "time_ms": time_ms})
        return out[-self.max_events:]

    def __len__(self) -> int:
        return len(self._events)
