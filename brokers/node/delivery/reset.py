"""Reset a consumer group's offsets (admin operation; docs/fleet.md "Admin channel").

Kept out of ``engine.py`` on purpose: it works on the engine's cursors directly. A reset moves a
cursor's read frontier to ``offset`` and drops everything pending on it (in-flight and
to-be-redelivered entries): their receipt handles stop working (ack answers EXPIRED), and
messages at or after ``offset`` are delivered again, those before it never. All of it runs on
the event loop without awaiting between reading and changing a cursor.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from brokers.node.delivery.inflight import Cursor

if TYPE_CHECKING:
    from brokers.node.delivery.engine import DeliveryEngine
    from brokers.node.delivery.types import ConsumerGroup


def group_cursor_keys(engine: DeliveryEngine, group_key: str) -> list[tuple[str, str, int, str]]:
    """Every cursor key (group, topic, queue id, consumer) the engine has for ``group_key``."""
    return [k for k in engine._cursors if k[0] == group_key]  # noqa: SLF001


def committed(engine: DeliveryEngine, group: ConsumerGroup, topic: str, queue_id: int,
              consumer: str = "") -> int:
    """Committed offset of one cursor, or where a first receive would start."""
    cur = engine._cursors.get((group.key, topic, queue_id, consumer))  # noqa: SLF001
    if cur is not None:
        return cur.base
    lo, hi = engine._store.queue_bounds(topic, queue_id)  # noqa: SLF001
    return lo if engine._cfg.clustering_start == "earliest" else hi  # noqa: SLF001


async def reset_cursor(engine: DeliveryEngine, group: ConsumerGroup, topic: str, queue_id: int,
                       offset: int, consumer: str = "") -> None:
    """Point the cursor at ``offset`` and drop its pending entries."""
    key = (group.key, topic, queue_id, consumer)
    for _ in range(200):  # a receive reading this cursor right now: let it finish first
        cur = engine._cursors.get(key)  # noqa: SLF001
        if cur is None or not cur.busy:
            break
        await asyncio.sleep(0.01)
    cur = engine._cursors.get(key)  # noqa: SLF001
    if cur is None:
        cur = engine._cursors[key] = Cursor(key, offset)  # noqa: SLF001
    else:  # changed in place: a receive waiting for this cursor keeps the same object
        for batch, index in list(cur.pending.values()):
            engine._resolve(batch, index, moved=True)  # noqa: SLF001 - handles now answer EXPIRED
        cur.pending.clear()
        cur.ready.clear()
        cur.ready_set.clear()
        cur._heap.clear()  # noqa: SLF001
        cur.ahead = None  # read-ahead of the old position
        cur.nxt = offset
    engine._state.put_cursor(key, cur.base, cur.nxt)  # noqa: SLF001
    engine._notifier.notify(topic)  # noqa: SLF001 - long-pollers see the replayed messages
