"""A small, bounded, in-memory log of per-delivery events (for the admin "trace" query).

The engine's durable state answers "where is the group's committed offset" and "which entries
are in flight", but forgets *who* received a message once it is acked. This ring keeps the last
events per message: ``delivered`` (group, client, attempt), ``acked``, ``dead_lettered``.

Bounds: at most ``max_messages`` messages (oldest dropped first) and ``max_events`` events per
message. In memory only: a restart forgets it, and the trace then falls back to what the durable
state knows (committed offsets, in-flight entries, DLQ copies). Cost: one dict operation per
delivered message; no I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Final

TraceKey = tuple[str, int, int]  # (stored topic, queue id, queue offset)

DEFAULT_MAX_MESSAGES: Final = 65_536
DEFAULT_MAX_EVENTS: Final = 16


class DeliveryTrace:
    def __init__(self, max_messages: int = DEFAULT_MAX_MESSAGES,
                 max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self.max_messages = max_messages
        self.max_events = max_events
        self._events: OrderedDict[TraceKey, list[dict[str, Any]]] = OrderedDict()

    def record(self, event: str, *, group: str, topic: str, queue_id: int, offset: int,
               client_id: str = "", attempt: int = 0, time_ms: int = 0) -> None:
        key = (topic, queue_id, offset)
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = []
            if len(self._events) > self.max_messages:
                self._events.popitem(last=False)
        events.append({"event": event, "group": group, "client_id": client_id,
                       "attempt": attempt, "time_ms": time_ms})
        if len(events) > self.max_events:
            del events[0]

    def events(self, topic: str, queue_id: int, offset: int) -> list[dict[str, Any]]:
        return [dict(e) for e in self._events.get((topic, queue_id, offset), ())]

    def __len__(self) -> int:
        return len(self._events)
