"""Admin operations over the node's store and delivery engine, for one namespace at a time.

``await AdminService(...).handle(op, namespace, args) -> dict`` (JSON-able), raising
``AdminError(code, message)`` for a refused request. Every topic the handlers touch is
``<namespace>%<topic>``, so a request can never reach another namespace's data; a message looked
up by id must be stored under the request's namespace (else ``message_not_found``).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from brokers.node.delivery import ConsumerGroup, MessageType, dlq_topic
from brokers.node.delivery.reset import committed, group_cursor_keys, reset_cursor
from brokers.node.store import MessageFlag, NewMessage, ReadStatus, StoredMessage
from brokers.node.store.model import (
    PROP_CLIENT_ID,
    PROP_DELIVERY_TIME_MS,
    PROP_DLQ_ORIGIN,
    PROP_ORIGIN_MSG_ID,
    PROP_ORIGIN_QUEUE_ID,
    PROP_ORIGIN_TOPIC,
    PROP_PRODUCER_GROUP,
    PROP_RETRY_TOPIC,
)

if TYPE_CHECKING:
    from brokers.node.delivery import DeliveryEngine
    from brokers.node.store import MessageStore

MAX_PAGE: Final = 100
BODY_PREVIEW_BYTES: Final = 64 * 1024
DLQ_SCAN_LIMIT: Final = 2048  # trace: DLQ entries scanned for a copy of a message
RELEASE_SCAN_LIMIT: Final = 4096  # trace: entries scanned for the released copy of a held message
_UNIQ_KEY: Final = "__UNIQ_KEY"  # the client's own message id (grpc codec)


class AdminError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _str(args: Mapping[str, Any], name: str, *, required: bool = True, default: str = "") -> str:
    value = args.get(name, default)
    if value is None:
        value = default
    if not isinstance(value, str) or (required and not value):
        raise AdminError("invalid_argument", f"'{name}' must be a non-empty string")
    return value


def _int(args: Mapping[str, Any], name: str, default: int | None = None, *, lo: int = 0,
         hi: int | None = None) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise AdminError("invalid_argument", f"'{name}' must be an integer")
    if value < lo or (hi is not None and value > hi):
        raise AdminError("invalid_argument", f"'{name}' out of range [{lo}, {hi}]")
    return value


def message_json(m: StoredMessage, namespace: str) -> dict[str, Any]:
    """A stored message as JSON: bare topic, user and system properties apart, body as base64
    (first ``BODY_PREVIEW_BYTES``) plus UTF-8 text when it decodes."""
    body = bytes(m.body)
    preview = body[:BODY_PREVIEW_BYTES]
    try:
        text: str | None = preview.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    props = dict(m.properties)
    return {
        "msg_id": m.msg_id,
        "topic": m.topic[len(namespace) + 1:],
        "queue_id": m.queue_id,
        "queue_offset": m.queue_offset,
        "tag": m.tag,
        "keys": list(m.keys),
        "properties": {k: v for k, v in props.items() if not k.startswith("__")},
        "system_properties": {k: v for k, v in props.items() if k.startswith("__")},
        "body_size": len(body),
        "body_base64": base64.b64encode(preview).decode("ascii"),
        "body_text": text,
        "body_truncated": len(body) > len(preview),
        "born_timestamp_ms": m.born_timestamp_ms,
        "store_timestamp_ms": m.store_timestamp_ms,
        "born_host": m.born_host,
        "reconsume_times": m.reconsume_times,
        "flags": m.flags,
    }


class AdminService:
    """Handlers of the admin ops. ``state`` (a ``StateHolder``-like object with ``.current``)
    and ``clients`` (the gRPC layer's ``ClientRegistry``) are optional: without them group
    settings fall back to defaults and no online clients are listed."""

    def __init__(self, store: MessageStore, engine: DeliveryEngine, *, state: Any = None,
                 clients: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.engine = engine
        self.state = state
        self.clients = clients
        self.clock = clock
        self._ops: dict[str, Callable[[str, Mapping[str, Any]], Awaitable[dict[str, Any]]]] = {
            "message.get": self.message_get,
            "message.by_key": self.message_by_key,
            "message.by_time": self.message_by_time,
            "message.trace": self.message_trace,
            "group.status": self.group_status,
            "group.reset_offset": self.group_reset_offset,
            "group.dlq": self.group_dlq,
            "group.dlq_resend": self.group_dlq_resend,
        }

    async def handle(self, op: str, namespace: str, args: Mapping[str, Any] | None) -> dict[str, Any]:
        if not isinstance(namespace, str) or not namespace or "%" in namespace:
            raise AdminError("invalid_argument", "a namespace is required")
        handler = self._ops.get(op)
        if handler is None:
            raise AdminError("unknown_op", f"unknown admin op {op!r}")
        if args is None:
            args = {}
        if not isinstance(args, Mapping):
            raise AdminError("invalid_argument", "'args' must be an object")
        return await handler(namespace, args)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _topic(namespace: str, args: Mapping[str, Any]) -> str:
        return f"{namespace}%{_str(args, 'topic')}"

    async def _own_message(self, namespace: str, msg_id: str) -> StoredMessage:
        try:
            m = await self.store.get_by_id(msg_id)
        except Exception:  # noqa: BLE001 - malformed ids: the store raises its own error
            m = None
        if m is None or not m.topic.startswith(namespace + "%"):
            raise AdminError("message_not_found", f"no message {msg_id!r} in this instance")
        return m

    def _group(self, namespace: str, name: str) -> ConsumerGroup:
        known = self.engine._groups.get(f"{namespace}%{name}")  # noqa: SLF001
        if known is not None:
            return known
        spec = None
        if self.state is not None:
            ns = self.state.current.namespaces.get(namespace)
            spec = ns.groups.get(name) if ns is not None else None
        if spec is None:
            return ConsumerGroup(namespace=namespace, name=name)
        return ConsumerGroup(
            namespace=namespace, name=name, broadcast=spec.delivery.value == "broadcast",
            fifo=spec.fifo, max_delivery_attempts=spec.max_delivery_attempts)

    def _group_topics(self, group: ConsumerGroup, args: Mapping[str, Any]) -> list[str]:
        """Stored topics the group consumes: the one named in ``args`` or every topic it has
        cursors on."""
        if args.get("topic"):
            return [f"{group.namespace}%{_str(args, 'topic')}"]
        return sorted({k[1] for k in group_cursor_keys(self.engine, group.key)})

    def _consumers(self, group: ConsumerGroup, topic: str, queue_id: int) -> list[str]:
        if not group.broadcast:
            return [""]
        return sorted({k[3] for k in group_cursor_keys(self.engine, group.key)
                       if k[1] == topic and k[2] == queue_id})

    # ------------------------------------------------------------------ messages
    async def message_get(self, namespace: str, args: Mapping[str, Any]) -> dict[str, Any]:
        m = await self._own_message(namespace, _str(args, "msg_id"))
        return {"message": message_json(m, namespace)}

    async def message_by_key(self, namespace: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """The store's key index (filled in the background: a message appended a moment ago
        may not be found yet)."""
        topic = self._topic(namespace, args)
        limit = _int(args, "limit", 32, lo=1, hi=MAX_PAGE)
        found = await self.store.find_by_key(topic, _str(args, "key"), limit=limit)
        return {"messages": [message_json(m, namespace) for m in found
                             if m.topic == topic]}

    async def message_by_time(self, namespace: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Messages of a topic stored in ``[from_ms, to_ms)``, queue by queue. ``cursor`` (from
        the previous page's ``next_cursor``) is ``"<queue id>:<offset>"``."""
        topic = self._topic(namespace, args)
        start = _int(args, "from_ms")
        end = _int(args, "to_ms", 2**62)
        limit = _int(args, "limit", 32, lo=1, hi=MAX_PAGE)
        queues = sorted(self.store.queues(topic))
        q_index, first_offset = 0, None
        raw_cursor = args.get("cursor")
        if raw_cursor:
            try:
                q_text, _, off_text = str(raw_cursor).partition(":")
                cq, co = int(q_text), int(off_text)
            except ValueError:
                raise AdminError("invalid_argument", "malformed 'cursor'") from None
            q_index = next((i for i, q in enumerate(queues) if q >= cq), len(queues))
            if q_index < len(queues) and queues[q_index] == cq:
                first_offset = co
        out: list[dict[str, Any]] = []
        next_cursor: str | None = None
        for i in range(q_index, len(queues)):
            q = queues[i]
            if len(out) >= limit:  # the page is full and this queue was not looked at yet
                next_cursor = f"{q}:{await self.store.offset_for_time(topic, q, start)}"
                break
            offset = first_offset if i == q_index and first_offset is not None else \
                await self.store.offset_for_time(topic, q, start)
            lo, hi = self.store.queue_bounds(topic, q)
            offset, done = max(offset, lo), False
            while not done and offset < hi and len(out) < limit:
                res = await self.store.read(topic, q, offset, max_count=min(32, limit - len(out)))
                if res.status is not ReadStatus.FOUND or not res.messages:
                    if res.next_offset <= offset:
                        break
                    offset = res.next_offset
                    continue
                for m in res.messages:
                    if m.store_timestamp_ms >= end:
                        done = True
                        break
                    if m.store_timestamp_ms >= start:
                        out.append(message_json(m, namespace))
                    offset = m.queue_offset + 1
                    if len(out) >= limit:
                        break
            if len(out) >= limit and not done and offset < hi:
                next_cursor = f"{q}:{offset}"
                break
        return {"messages": out, "next_cursor": next_cursor}

    # ------------------------------------------------------------------ trace
    async def _released_copy(self, held: StoredMessage) -> StoredMessage | None:
        """The copy a delay timer / committed transaction appended to the real topic for the
        held message ``held`` (it carries the held copy's id in ``__ORIGIN_MSG_ID``), found by a
        bounded scan from the time it was due; None while still held (or rolled back)."""
        topic = held.properties.get(PROP_ORIGIN_TOPIC, "")
        try:
            queue_id = int(held.properties.get(PROP_ORIGIN_QUEUE_ID, "0"))
        except ValueError:
            return None
        if not topic or queue_id not in self.store.queues(topic):
            return None
        try:
            since = int(held.properties.get(PROP_DELIVERY_TIME_MS) or 0)
        except ValueError:
            since = 0
        since = max(held.store_timestamp_ms, since - 60_000)  # timers fire ± a tick
        offset = await self.store.offset_for_time(topic, queue_id, since)
        _lo, hi = self.store.queue_bounds(topic, queue_id)
        return await self._scan_for_origin(topic, queue_id, offset, min(hi, offset + RELEASE_SCAN_LIMIT),
                                           held.msg_id)

    async def _dlq_copy(self, namespace: str, m: StoredMessage, group: str) -> StoredMessage | None:
        """The DLQ copy of ``m`` in ``group``'s DLQ, if any (keys index, else a bounded scan).
        DLQ copies name the producer's id (``__ORIGIN_MSG_ID`` of re-appended copies)."""
        topic = dlq_topic(namespace, group)
        public_id = m.properties.get(PROP_ORIGIN_MSG_ID) or m.msg_id
        if m.keys:  # the key index is filled in the background: a miss falls back to the scan
            for c in await self.store.find_by_key(topic, m.keys[0], limit=64):
                if c.properties.get(PROP_ORIGIN_MSG_ID) == public_id:
                    return c
        if 0 not in self.store.queues(topic):
            return None
        lo, hi = self.store.queue_bounds(topic, 0)
        return await self._scan_for_origin(topic, 0, max(lo, hi - DLQ_SCAN_LIMIT), hi, public_id)

    async def _scan_for_origin(self, topic: str, queue_id: int, offset: int, stop: int,
                               origin_id: str) -> StoredMessage | None:
        """The first message in ``[offset, stop)`` of the queue whose ``__ORIGIN_MSG_ID`` is
        ``origin_id`` (a re-appended copy of that message), skipping unreadable entries."""
        while offset < stop:
            res = await self.store.read(topic, queue_id, offset, max_count=64)
            if res.status is not ReadStatus.FOUND:
                if res.next_offset <= offset:
                    break
                offset = res.next_offset
                continue
            for c in res.messages:
                if c.properties.get(PROP_ORIGIN_MSG_ID) == origin_id:
                    return c
            offset = max(res.next_offset, offset + 1)
        return None

    async def message_trace(self, namespace: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """What happened to one message: sent, stored, and per consumer group delivered/acked,
        in flight (attempt), awaiting retry, moved to the DLQ, or not yet delivered."""
        m = await self._own_message(namespace, _str(args, "msg_id"))
        props = m.properties
        held: dict[str, Any] | None = None
        if m.topic.startswith((f"{namespace}%%SYS%TIMER%", f"{namespace}%%SYS%HALF%")):
            # the id a delay/transaction send returned names the held copy: follow it to the
            # copy released into the real topic, which is what consumers receive
            released = await self._released_copy(m)
            held = {"kind": "delay" if "%SYS%TIMER%" in m.topic else "transaction",
                    "due_ms": int(props.get(PROP_DELIVERY_TIME_MS) or 0) or None,
                    "topic": props.get(PROP_ORIGIN_TOPIC, "")[len(namespace) + 1:],
                    "released": released is not None,
                    "released_msg_id": released.msg_id if released is not None else None}
            if released is not None:
                m = released
        events = self.engine.trace.events(m.topic, m.queue_id, m.queue_offset)
        deliveries = []
        for key in sorted(k for k in self.engine._cursors  # noqa: SLF001
                          if k[1] == m.topic and k[2] == m.queue_id
                          and k[0].startswith(namespace + "%")):
            grp_key, _topic, _q, consumer = key
            cur = self.engine._cursors[key]  # noqa: SLF001
            group = grp_key[len(namespace) + 1:]
            mine = [e for e in events if e["group"] == grp_key
                    and (not consumer or e["client_id"] == consumer)]
            entry: dict[str, Any] = {
                "group": group, "consumer": consumer or None, "committed_offset": cur.base,
                "attempts": max((e["attempt"] for e in mine), default=0),
                "clients": sorted({e["client_id"] for e in mine if e["client_id"]}),
                "events": mine,
            }
            pending = cur.pending.get(m.queue_offset)
            if pending is not None:
                batch, index = pending
                entry["attempts"] = max(entry["attempts"], batch.attempts[index])
                entry["client_id"] = batch.client
                if m.queue_offset in cur.ready_set:
                    entry["status"] = "awaiting_retry"
                else:
                    entry["status"] = "in_flight"
                    entry["invisible_until_ms"] = batch.deadline
            elif m.queue_offset < cur.nxt:
                copy = None
                if any(e["event"] == "dead_lettered" for e in mine) or not any(
                        e["event"] == "acked" for e in mine):
                    copy = await self._dlq_copy(namespace, m, group)
                if copy is not None:
                    entry["status"] = "dead_lettered"
                    entry["dlq"] = {"topic": f"%DLQ%{group}", "msg_id": copy.msg_id,
                                    "queue_offset": copy.queue_offset}
                else:
                    # Acked, or skipped by the group's filter (the durable state keeps only
                    # the committed offset; the events show acks seen since the node started).
                    entry["status"] = "acked"
                    acked = [e for e in mine if e["event"] == "acked"]
                    if acked:
                        entry["acked_by"] = acked[-1]["client_id"]
                        entry["acked_at_ms"] = acked[-1]["time_ms"]
            else:
                entry["status"] = "not_delivered"
            entry["retried"] = entry["attempts"] > 1
            deliveries.append(entry)
        return {
            "message": message_json(m, namespace),
            "held": held,
            "sent": {
                "born_timestamp_ms": m.born_timestamp_ms,
                "born_host": m.born_host,
                "producer_group": props.get(PROP_PRODUCER_GROUP, ""),
                "producer_client_id": props.get(PROP_CLIENT_ID, ""),
                "client_message_id": props.get(_UNIQ_KEY, ""),
            },
            "stored": {
                "store_timestamp_ms": m.store_timestamp_ms,
                "topic": m.topic[len(namespace) + 1:],
                "queue_id": m.queue_id,
                "queue_offset": m.queue_offset,
                "commitlog_offset": m.commitlog_offset,
            },
            "deliveries": deliveries,
        }

    # ------------------------------------------------------------------ groups
    async def group_status(self, namespace: str, args: Mapping[str, Any]) -> dict[str, Any]:
        name = _str(args, "group")
        group = self._group(namespace, name)
        topics = []
        total = 0
        for topic in self._group_topics(group, args):
            queues = []
            for q in sorted(self.store.queues(topic)):
                for consumer in self._consumers(group, topic, q):
                    cur = self.engine._cursors.get((group.key, topic, q, consumer))  # noqa: SLF001
                    lo, hi = self.store.queue_bounds(topic, q)
                    base = committed(self.engine, group, topic, q, consumer)
                    inflight = cur.inflight_count if cur is not None else 0
                    queues.append({"queue_id": q, "consumer": consumer or None,
                                   "committed_offset": base, "min_offset": lo, "max_offset": hi,
                                   "lag": max(0, hi - base), "inflight": inflight,
                                   "awaiting_retry": len(cur.ready_set) if cur else 0})
            lag = sum(x["lag"] for x in queues)
            total += lag
            topics.append({"topic": topic[len(namespace) + 1:], "lag": lag, "queues": queues})
        clients = []
        if self.clients is not None:
            for s in list(getattr(self.clients, "_sessions", {}).values()):
                if s.namespace == namespace and s.group == name:
                    clients.append({"client_id": s.client_id, "last_seen": s.last_seen,
                                    "stream_open": s.outbox is not None})
        dlq = dlq_topic(namespace, name)
        dlq_lo, dlq_hi = self.store.queue_bounds(dlq, 0) if 0 in self.store.queues(dlq) else (0, 0)
        return {"group": name, "broadcast": group.broadcast, "fifo": group.fifo,
                "max_delivery_attempts": group.max_delivery_attempts,
                "lag": total, "topics": topics, "clients": sorted(clients, key=lambda c: c["client_id"]),
                "dlq": {"topic": f"%DLQ%{name}", "messages": dlq_hi - dlq_lo}}

    async def group_reset_offset(self, namespace: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Move the group's committed offsets to the first message stored at/after
        ``timestamp_ms`` on every queue. ``dry_run`` only reports, per queue, how many messages
        would be skipped (moving forward) or replayed (moving back)."""
        name = _str(args, "group")
        ts = _int(args, "timestamp_ms")
        dry_run = bool(args.get("dry_run", False))
        group = self._group(namespace, name)
        topics = self._group_topics(group, args)
        if not topics:
            raise AdminError("no_subscription",
                             f"group {name!r} has not consumed any topic yet; name one in 'topic'")
        plan = []
        for topic in topics:
            for q in sorted(self.store.queues(topic)):
                lo, hi = self.store.queue_bounds(topic, q)
                target = min(max(await self.store.offset_for_time(topic, q, ts), lo), hi)
                for consumer in self._consumers(group, topic, q):
                    current = committed(self.engine, group, topic, q, consumer)
                    plan.append({"topic": topic[len(namespace) + 1:], "queue_id": q,
                                 "consumer": consumer or None, "current_offset": current,
                                 "new_offset": target, "skipped": max(0, target - current),
                                 "replayed": max(0, current - target), "_stored": topic})
        if not dry_run:
            for p in plan:
                await reset_cursor(self.engine, group, p["_stored"], p["queue_id"],
                                   p["new_offset"], p["consumer"] or "")
            await self.engine.flush()
        for p in plan:
            del p["_stored"]
        return {"group": name, "timestamp_ms": ts, "dry_run": dry_run, "queues": plan,
                "skipped": sum(p["skipped"] for p in plan),
                "replayed": sum(p["replayed"] for p in plan)}

    async def group_dlq(self, namespace: str, args: Mapping[str, Any]) -> dict[str, Any]:
        name = _str(args, "group")
        topic = dlq_topic(namespace, name)
        limit = _int(args, "limit", 32, lo=1, hi=MAX_PAGE)
        if 0 not in self.store.queues(topic):
            return {"group": name, "messages": [], "next_cursor": None, "total": 0}
        lo, hi = self.store.queue_bounds(topic, 0)
        offset = max(lo, _int(args, "cursor", lo) if args.get("cursor") is not None else lo)
        out = []
        while offset < hi and len(out) < limit:
            res = await self.store.read(topic, 0, offset, max_count=limit - len(out))
            if res.status is not ReadStatus.FOUND:
                if res.next_offset <= offset:
                    break
                offset = res.next_offset
                continue
            for c in res.messages:
                item = message_json(c, namespace)
                item["origin"] = {
                    "topic": c.properties.get(PROP_RETRY_TOPIC, "")[len(namespace) + 1:],
                    "msg_id": c.properties.get(PROP_ORIGIN_MSG_ID, ""),
                    "queue_id": c.properties.get(PROP_ORIGIN_QUEUE_ID, ""),
                    "delivery_attempts": c.reconsume_times,
                }
                out.append(item)
                offset = c.queue_offset + 1
            offset = max(offset, res.next_offset)
        return {"group": name, "messages": out, "total": hi - lo,
                "next_cursor": offset if offset < hi else None}

    async def group_dlq_resend(self, namespace: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Append a copy of a DLQ message to its original topic/queue (a new message id; the
        DLQ entry stays, as in RocketMQ)."""
        name = _str(args, "group")
        m = await self._own_message(namespace, _str(args, "msg_id"))
        if m.topic != dlq_topic(namespace, name):
            raise AdminError("message_not_found", f"message is not in the DLQ of group {name!r}")
        origin = m.properties.get(PROP_RETRY_TOPIC, "")
        if not origin.startswith(namespace + "%"):
            raise AdminError("no_origin", "the DLQ message does not name its original topic")
        queues = self.store.queues(origin)
        try:
            queue_id = int(m.properties.get(PROP_ORIGIN_QUEUE_ID, "0"))
        except ValueError:
            queue_id = 0
        if queues and queue_id not in queues:
            queue_id = min(queues)
        drop = {PROP_RETRY_TOPIC, PROP_ORIGIN_QUEUE_ID, PROP_ORIGIN_MSG_ID, PROP_DLQ_ORIGIN,
                PROP_DELIVERY_TIME_MS}
        props = {k: v for k, v in m.properties.items() if k not in drop}
        flags = MessageFlag(m.flags) & ~MessageFlag.DLQ
        res = await self.engine.put(
            NewMessage(topic=origin, queue_id=queue_id, body=bytes(m.body), tag=m.tag,
                       keys=m.keys, properties=props, born_timestamp_ms=m.born_timestamp_ms,
                       born_host=m.born_host, flags=int(flags)),
            message_type=MessageType.FIFO if flags & MessageFlag.FIFO else MessageType.NORMAL)
        if not res.ok:
            raise AdminError("store_error", f"resend failed: {res.append.status.name}")
        return {"group": name, "dlq_msg_id": m.msg_id, "topic": origin[len(namespace) + 1:],
                "queue_id": queue_id, "msg_id": res.append.msg_id,
                "origin_msg_id": m.properties.get(PROP_ORIGIN_MSG_ID, "")}


OPS: Final = ("message.get", "message.by_key", "message.by_time", "message.trace",
              "group.status", "group.reset_offset", "group.dlq", "group.dlq_resend")
