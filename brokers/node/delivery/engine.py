"""The delivery engine: put (normal / delay / transaction), pop-style receive, ack, retry, DLQ.

One instance per node, used from the node's single event loop. See docs/delivery.md for the
model and docs/delivery-contract.md for the seam the gRPC layer codes against.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from brokers.node.delivery.inflight import Batch, Cursor
from brokers.node.delivery.naming import dlq_topic, half_topic, split_stored_name, timer_topic
from brokers.node.delivery.notify import TopicNotifier
from brokers.node.delivery.recall import RecallHandles
from brokers.node.delivery.receipt import Receipt, ReceiptCodec
from brokers.node.delivery.state import CursorKey, DeliveryState, HalfRow, TimerRow
from brokers.node.delivery.trace import DeliveryTrace
from brokers.node.delivery.types import (
    AckStatus,
    ChangeInvisibleResult,
    ChangeInvisibleStatus,
    ConsumerGroup,
    Delivery,
    DeliveryConfig,
    DlqStatus,
    EndTransactionStatus,
    EngineStoppedError,
    IllegalInvisibleTimeError,
    MessageType,
    PutResult,
    QueueLag,
    RecallStatus,
    TransactionCheck,
)
from brokers.node.filter import MATCH_ALL, MessageFilter
from brokers.node.filter.tags import TagFilter
from brokers.node.store import MessageFlag, NewMessage, ReadStatus, StoredMessage
from brokers.node.store.model import (
    PROP_DELIVERY_TIME_MS,
    PROP_DLQ_ORIGIN,
    PROP_MESSAGE_GROUP,
    PROP_ORIGIN_MSG_ID,
    PROP_ORIGIN_QUEUE_ID,
    PROP_ORIGIN_TOPIC,
    PROP_PRODUCER_GROUP,
    PROP_RETRY_TOPIC,
    PROP_TRANSACTION_ID,
)

if TYPE_CHECKING:
    from brokers.node.store import MessageStore

log = logging.getLogger(__name__)

TransactionChecker = Callable[[TransactionCheck], Awaitable[bool]]
_RESOLVED_MEMORY = 65536  # recently resolved transaction ids kept for idempotent EndTransaction
_MOVED_MEMORY = 65536  # finished batches with superseded entries, so stale handles stay dead


class DeliveryEngine:
    """Delivery state machine over a ``MessageStore``.

    Guarantees: at-least-once delivery; a message is invisible to its group (or broadcast client)
    from receive until its deadline, its ack, or its move to the DLQ; acked messages are not
    redelivered, also across restarts (state in ``state_path``, SQLite WAL; the last
    ``state_flush_ms`` of acks may be lost in a crash, which only causes redelivery); delay
    timers and half messages are durable before ``put`` returns.
    """

    def __init__(
        self,
        store: MessageStore,
        *,
        state_path: str | os.PathLike[str],
        clock: Callable[[], float] = time.time,
        config: DeliveryConfig | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._cfg = config or DeliveryConfig.from_env()
        self._state = DeliveryState(state_path)
        self._codec: ReceiptCodec | None = None
        self._notifier = TopicNotifier()
        self._cursors: dict[CursorKey, Cursor] = {}
        self._batches: dict[int, Batch] = {}
        self._expiry: list[tuple[int, int]] = []  # (deadline ms, batch id), lazily invalidated
        self._next_batch = 1
        self._groups: dict[str, ConsumerGroup] = {}
        self._rotation: dict[tuple[str, str], int] = {}
        self._registered: dict[tuple[str, str, str], int] = {}  # broadcast start times (ms)
        #: (group key, client id) -> when that broadcast client was last seen (ms)
        self._broadcast_seen: dict[tuple[str, str], int] = {}
        self._next_prune = 0
        self._timers: dict[int, TimerRow] = {}
        self._timer_heap: list[tuple[int, int]] = []
        self._next_timer = 1
        self._firing_timer = 0  # the timer _fire_timers is releasing (0: none)
        self._next_relocation = 0  # engine clock (ms) of the next relocate_held in tick
        self._halves: dict[str, HalfRow] = {}
        self._resolved_txns: OrderedDict[str, bool] = OrderedDict()
        self._checker: TransactionChecker | None = None
        self._moved: OrderedDict[int, int] = OrderedDict()
        self._ahead_lru: OrderedDict[CursorKey, Cursor] = OrderedDict()  # cursors with read-ahead
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._running = False
        self._tick_lock = asyncio.Lock()
        self._pin_registered = False
        self.trace = DeliveryTrace()  # bounded per-delivery events (admin trace query)

    # ================================================================= lifecycle
    def _now(self) -> int:
        return int(self._clock() * 1000)

    async def start(self, *, background: bool = True) -> None:
        """Load durable state and (unless ``background=False``, for tests that call ``tick``)
        start the background tick and the state flusher."""
        loaded = await self._state.load()
        self._codec = ReceiptCodec(self._cfg.receipt_secret or loaded.secret)
        self._recall_handles = RecallHandles(self._cfg.receipt_secret or loaded.secret)
        now = self._now()
        for key, (_base, nxt) in loaded.cursors.items():
            self._cursors[key] = Cursor(key, nxt)
            if key[3]:  # a broadcast client's cursor: its idle time counts from now
                self._broadcast_seen[(key[0], key[3])] = now
        max_id = 0
        for row in loaded.batches:
            cur = self._cursors.get(row.key)
            if cur is None:
                cur = self._cursors[row.key] = Cursor(row.key, max(row.offsets) + 1)
            b = Batch(row.id, row.key, row.client, row.offsets, row.attempts, row.resolved,
                      row.deadline, row.auto_renew, row.created, row.max_attempts)
            self._batches[b.id] = b
            for i in b.unresolved():
                cur.add_pending(b.offsets[i], b, i)
            heapq.heappush(self._expiry, (b.deadline, b.id))
            max_id = max(max_id, b.id)
        # Ids must never repeat (a handle names its batch): start above both the loaded ids and
        # a time-derived floor, since fully acked batches are deleted from the database.
        self._next_batch = max(max_id + 1, now * 1000)
        for t in loaded.timers:
            self._timers[t.id] = t
            heapq.heappush(self._timer_heap, (t.due, t.id))
            self._next_timer = max(self._next_timer, t.id + 1)
        self._halves = {h.txn: h for h in loaded.halves}
        self._running = True
        add_pin_source = getattr(self._store, "add_pin_source", None)
        if add_pin_source is not None and not self._pin_registered:
            add_pin_source(self.pin_offset)
            self._pin_registered = True
        if background:
            self._loops = [asyncio.create_task(self._tick_loop()),
                           asyncio.create_task(self._flush_loop())]

    async def stop(self) -> None:
        """Stop background work, wake long-pollers (they return what they have), flush state."""
        self._running = False
        for task in self._loops:
            task.cancel()
        for task in list(self._loops) + list(self._tasks):
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled or already logged
                pass
        self._loops = []
        self._notifier.notify_all()
        await self._state.close()

    def pin_offset(self) -> int | None:
        """Lowest commit-log offset the engine still needs, or None (the store's pin source).

        Needed: held copies of pending delay timers and unresolved transaction halves, and every
        pending entry of a cursor (in flight, or waiting for redelivery). Queue offsets map to
        commit-log offsets monotonically within one queue, so one consume-queue lookup per
        queue suffices. Retention stops at the segment holding the result (docs/delivery.md,
        "Retention pins"); nothing is moved. Runs on the event loop, no awaits.
        """
        lowest: dict[tuple[str, int], int] = {}

        def need(topic: str, qid: int, qoff: int) -> None:
            k = (topic, qid)
            old = lowest.get(k)
            if old is None or qoff < old:
                lowest[k] = qoff

        for t in self._timers.values():
            need(t.topic, t.qid, t.qoff)
        for h in self._halves.values():
            need(h.topic, h.qid, h.qoff)
        for cur in self._cursors.values():
            if cur.pending:
                need(cur.key[1], cur.key[2], cur.base)
        cqs = getattr(self._store, "cqs", None)
        if cqs is None:
            return None
        pin: int | None = None
        for (topic, qid), qoff in lowest.items():
            cq = cqs.get(topic, qid)
            if cq is None or cq.min_offset >= cq.max_offset:
                continue
            # An entry already below the queue minimum is gone (deleted before it was pinned);
            # later pending entries of the queue still need protection: pin from the minimum.
            entry = cq.entry(max(qoff, cq.min_offset))
            if entry is None:
                continue
            if pin is None or entry[0] < pin:
                pin = entry[0]
        return pin

    async def flush(self) -> None:
        """Make every state change so far durable (tests, shutdown)."""
        await self._state.flush()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.tick_ms / 1000)
            try:
                await self.tick()
            except Exception:
                log.exception("delivery tick failed")

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._cfg.state_flush_ms / 1000)
            if self._state.dirty:
                try:
                    await self._state.flush()
                except Exception:
                    log.exception("delivery state flush failed")

    async def tick(self) -> None:
        """One round of background work: expire deliveries, fire due timers, check halves."""
        async with self._tick_lock:
            await self._expire(self._now())
            await self._fire_timers(self._now())
            await self._check_halves(self._now())
            self._prune_broadcast(self._now())
            now = self._now()
            if now >= self._next_relocation:
                self._next_relocation = now + self._cfg.relocate_interval_ms
                await self.relocate_held()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ================================================================= producing
    async def put(
        self,
        msg: NewMessage,
        *,
        message_type: MessageType = MessageType.NORMAL,
        transaction_id: str = "",
        producer_group: str = "",
        producer_client_id: str = "",
    ) -> PutResult:
        """Store ``msg`` according to its type and wake long-pollers of its topic.

        DELAY (or any message whose ``__DELIVERY_TIME_MS`` lies in the future) goes to the
        namespace's timer topic and reaches ``msg.topic``/``msg.queue_id`` when due.
        TRANSACTION goes to the half topic and stays invisible until ``end_transaction``;
        ``transaction_id`` defaults to the store's msg id of the half record.
        """
        if message_type is MessageType.TRANSACTION:
            return await self._put_half(msg, transaction_id, producer_group, producer_client_id)
        due = _delivery_time(msg)
        if due is not None and due > self._now():
            return await self._put_timer(msg, due)
        res = await self._store.append(msg)
        if res.ok:
            self._notifier.notify(msg.topic)
        return PutResult(res)

    async def put_many(
        self, msgs: Sequence[NewMessage], *, message_type: MessageType = MessageType.NORMAL
    ) -> list[PutResult]:
        """``put`` for several messages; immediately visible ones go to the store as one batch."""
        if message_type is MessageType.TRANSACTION or _any_delayed(msgs, self._now()):
            return [await self.put(m, message_type=message_type) for m in msgs]
        results = await self._store.append_many(msgs)
        topic = msgs[0].topic if msgs else ""
        if all(m.topic == topic for m in msgs):  # one topic (every SendMessage): one notify
            if any(r.ok for r in results):
                self._notifier.notify(topic)
        else:
            for t in {m.topic for m, r in zip(msgs, results) if r.ok}:
                self._notifier.notify(t)
        new = _tuple_new  # PutResult(r), without the keyword defaults' Python __new__
        return [new(PutResult, (r, "", True, "")) for r in results]

    async def _put_timer(self, msg: NewMessage, due: int) -> PutResult:
        props = dict(msg.properties)
        props[PROP_ORIGIN_TOPIC] = msg.topic
        props[PROP_ORIGIN_QUEUE_ID] = str(msg.queue_id)
        props[PROP_DELIVERY_TIME_MS] = str(due)
        held = replace(msg, topic=timer_topic(msg.topic), queue_id=0, properties=props,
                       flags=msg.flags | MessageFlag.DELAY)
        res = await self._store.append(held)
        if not res.ok:
            return PutResult(res, visible=False)
        row = TimerRow(self._next_timer, held.topic, 0, res.queue_offset, due)
        self._next_timer += 1
        self._timers[row.id] = row
        heapq.heappush(self._timer_heap, (due, row.id))
        self._state.put_timer(row)
        await self._state.flush()
        return PutResult(res, visible=False,
                         recall_handle=self._recall_handles.issue(msg.topic, row.id, res.msg_id))

    async def recall(self, stored_topic: str, handle: str) -> tuple[RecallStatus, str]:
        """Cancel a delay message of ``stored_topic`` that is still waiting (RecallMessage):
        (status, the message id the handle names, "" when the handle is not valid).

        ``handle`` must have been issued by this node for ``stored_topic`` (recall.py); a timer
        that is firing right now counts as delivered. The removal is durable before this returns.
        """
        target = self._recall_handles.verify(stored_topic, handle)
        if target is None:
            return RecallStatus.INVALID_HANDLE, ""
        return await self._recall(stored_topic, target.timer_id, target.message_id), \
            target.message_id

    async def _recall(self, stored_topic: str, timer_id: int, msg_id: str) -> RecallStatus:
        row = self._timers.get(timer_id)
        if row is None or row.topic != timer_topic(stored_topic) or timer_id == self._firing_timer:
            return RecallStatus.NOT_PENDING
        held = await self._read_one(row.topic, row.qid, row.qoff)
        # Re-checked after the read: the timer may have fired or been recalled meanwhile.
        if (held is None or held.properties.get(PROP_ORIGIN_MSG_ID, held.msg_id) != msg_id
                or self._timers.get(timer_id) is not row
                or timer_id == self._firing_timer):
            return RecallStatus.NOT_PENDING
        del self._timers[timer_id]  # its heap entry is skipped when it comes up
        self._state.delete_timer(timer_id)
        try:
            await self._state.flush()
        except Exception:  # reported to the caller as a store error
            log.exception("recall of timer %s: could not persist the removal", timer_id)
            self._timers[timer_id] = row
            self._state.put_timer(row)
            return RecallStatus.STORE_ERROR
        return RecallStatus.RECALLED

    async def _put_half(self, msg: NewMessage, txn_id: str, producer_group: str,
                        client_id: str) -> PutResult:
        props = dict(msg.properties)
        props[PROP_ORIGIN_TOPIC] = msg.topic
        props[PROP_ORIGIN_QUEUE_ID] = str(msg.queue_id)
        if producer_group:
            props[PROP_PRODUCER_GROUP] = producer_group
        held = replace(msg, topic=half_topic(msg.topic), queue_id=0, properties=props,
                       flags=msg.flags | MessageFlag.TRANSACTION_HALF)
        res = await self._store.append(held)
        if not res.ok:
            return PutResult(res, transaction_id=txn_id, visible=False)
        txn_id = txn_id or res.msg_id
        now = self._now()
        row = HalfRow(txn_id, held.topic, 0, res.queue_offset, msg.topic, producer_group,
                      client_id, now, 0, now + self._cfg.transaction_check_after_ms)
        self._halves[txn_id] = row
        self._state.put_half(row)
        await self._state.flush()
        return PutResult(res, transaction_id=txn_id, visible=False)

    async def _read_one(self, topic: str, queue_id: int, offset: int) -> StoredMessage | None:
        res = await self._store.read(topic, queue_id, offset, max_count=1)
        if res.status is ReadStatus.FOUND and res.messages and res.messages[0].queue_offset == offset:
            return res.messages[0]
        return None

    @staticmethod
    def _released(m: StoredMessage, *, commit: bool) -> NewMessage:
        """The held (timer / half) copy turned back into a message for its real topic."""
        props = dict(m.properties)
        topic = props.pop(PROP_ORIGIN_TOPIC)
        # The id the producer got back is the held copy's: consumers must see that one
        # (RocketMQ keeps UNIQ_KEY across the re-append); codec.py reports it as message_id.
        props.setdefault(PROP_ORIGIN_MSG_ID, m.msg_id)
        queue_id = int(props.pop(PROP_ORIGIN_QUEUE_ID, "0"))
        flags = m.flags & ~(MessageFlag.TRANSACTION_HALF | MessageFlag.DELAY)
        if commit:
            flags |= MessageFlag.TRANSACTION_COMMIT
        return NewMessage(topic=topic, queue_id=queue_id, body=bytes(m.body), tag=m.tag,
                          keys=m.keys, properties=props, born_timestamp_ms=m.born_timestamp_ms,
                          born_host=m.born_host, flags=flags, reconsume_times=m.reconsume_times)

    # ================================================================= relocation
    async def relocate_held(self) -> int:
        """Move held copies (delay timers, transaction halves) out of the segment retention
        could not delete because of them (``MessageStore.retention_blocked_at``).

        Each copy is appended again, unchanged but for ``__ORIGIN_MSG_ID`` (so the message keeps
        the id its producer got), and its row is pointed at the new copy; the old one is left
        for retention. A crash in between leaves the row on the old copy, which retention still
        keeps: nothing is lost, at worst an unreferenced copy remains. Returns how many moved.
        """
        store = self._store
        blocked = getattr(store, "retention_blocked_at", lambda: None)()
        if blocked is None:
            return 0
        horizon = store.segment_end(blocked)
        budget = self._cfg.relocate_max_per_round
        below: dict[tuple[str, int], int] = {}  # (topic, queue) -> first qoff at/after horizon
        rows: list[TimerRow | HalfRow] = [
            *(t for t in self._timers.values() if t.id != self._firing_timer),
            *self._halves.values(),
        ]
        moved = 0
        for row in rows:
            if moved >= budget:
                break
            if not self._held_before(row, horizon, below):
                continue
            new_qoff = await self._move_held(row.topic, row.qid, row.qoff)
            # The row may have fired, been recalled or resolved during the append.
            if new_qoff is None or not self._still_held(row):
                continue
            row.qoff = new_qoff
            if isinstance(row, TimerRow):
                self._state.put_timer(row)
            else:
                self._state.put_half(row)
            moved += 1
        if moved:
            await self._state.flush()
            log.info("moved %d held message(s) out of the segment retention is waiting for "
                     "(pinned at offset %d)", moved, blocked)
        return moved

    def _still_held(self, row: TimerRow | HalfRow) -> bool:
        """Whether ``row`` is still the pending timer / half of its id."""
        if isinstance(row, TimerRow):
            return self._timers.get(row.id) is row
        return self._halves.get(row.txn) is row

    def _held_before(self, row: TimerRow | HalfRow, horizon: int,
                     below: dict[tuple[str, int], int]) -> bool:
        """Whether the held copy of ``row`` lies below commit-log offset ``horizon``: one
        binary search per held-copy queue and round (``below`` caches it), not a read per row,
        since a node may hold millions of pending timers."""
        key = (row.topic, row.qid)
        first = below.get(key)
        if first is None:
            cq = self._store.cqs.get(row.topic, row.qid)
            first = below[key] = cq.first_at_or_after(horizon) if cq is not None else -1
        return row.qoff < first

    async def _move_held(self, topic: str, qid: int, qoff: int) -> int | None:
        """Append the held copy at (topic, qid, qoff) again; its new queue offset, or None."""
        m = await self._read_one(topic, qid, qoff)
        if m is None:
            return None
        props = dict(m.properties)
        props.setdefault(PROP_ORIGIN_MSG_ID, m.msg_id)
        copy = NewMessage(topic=topic, queue_id=qid, body=bytes(m.body), tag=m.tag, keys=m.keys,
                          properties=props, born_timestamp_ms=m.born_timestamp_ms,
                          born_host=m.born_host, flags=m.flags, reconsume_times=m.reconsume_times)
        (res,) = await self._store.append_many([copy], relocation=True)
        if not res.ok:
            log.warning("could not move held message %s/%d/%d: %s", topic, qid, qoff, res.status)
            return None
        return res.queue_offset

    async def _fire_timers(self, now: int) -> None:
        while self._timer_heap and self._timer_heap[0][0] <= now:
            _due, tid = heapq.heappop(self._timer_heap)
            row = self._timers.get(tid)
            if row is None:
                continue
            self._firing_timer = tid  # a recall from here on finds it delivered
            try:
                m = await self._read_one(row.topic, row.qid, row.qoff)
                if m is None:
                    log.warning("timer %s: held message %s/%s gone; dropping", tid, row.topic,
                                row.qoff)
                else:
                    out = self._released(m, commit=False)
                    res = await self._store.append(out)
                    if not res.ok:  # try again shortly; the held copy is still there
                        log.warning("timer %s: append failed (%s); retrying", tid, res.status)
                        heapq.heappush(self._timer_heap, (now + 1000, tid))
                        continue
                    self._notifier.notify(out.topic)
                del self._timers[tid]
                self._state.delete_timer(tid)
            finally:
                self._firing_timer = 0

    # ================================================================= transactions
    def set_transaction_checker(self, checker: TransactionChecker | None) -> None:
        """Install the callback that asks a producer about an orphaned half message. It returns
        False when no producer could be asked (the check still counts toward the maximum)."""
        self._checker = checker

    def _remember_resolved(self, txn_id: str, committed: bool) -> None:
        self._resolved_txns[txn_id] = committed
        while len(self._resolved_txns) > _RESOLVED_MEMORY:
            self._resolved_txns.popitem(last=False)

    async def end_transaction(
        self, *, topic: str, transaction_id: str, commit: bool, from_check: bool = False
    ) -> EndTransactionStatus:
        """Commit (append to the real topic, original properties) or roll back a half message.
        Idempotent for recently resolved transactions (ALREADY_RESOLVED)."""
        row = self._halves.get(transaction_id)
        if row is None or row.real_topic != topic:
            if transaction_id in self._resolved_txns:
                return EndTransactionStatus.ALREADY_RESOLVED
            return EndTransactionStatus.UNKNOWN_TRANSACTION
        del self._halves[transaction_id]  # before awaiting: a concurrent repeat sees it resolved
        self._remember_resolved(transaction_id, commit)
        if commit:
            m = await self._read_one(row.topic, row.qid, row.qoff)
            if m is None:
                log.warning("transaction %s: half message gone", transaction_id)
                self._state.delete_half(transaction_id)
                return EndTransactionStatus.UNKNOWN_TRANSACTION
            out = self._released(m, commit=True)
            props = dict(out.properties)
            props[PROP_TRANSACTION_ID] = transaction_id
            res = await self._store.append(replace(out, properties=props))
            if not res.ok:
                self._halves[transaction_id] = row
                self._resolved_txns.pop(transaction_id, None)
                return EndTransactionStatus.STORE_ERROR
            self._notifier.notify(out.topic)
        self._state.delete_half(transaction_id)
        return EndTransactionStatus.COMMITTED if commit else EndTransactionStatus.ROLLED_BACK

    async def _check_halves(self, now: int) -> None:
        cfg = self._cfg
        for row in [h for h in self._halves.values() if h.next_check <= now]:
            if row.checks >= cfg.transaction_max_checks:
                log.warning("transaction %s unresolved after %d checks: rolled back",
                            row.txn, row.checks)
                self._halves.pop(row.txn, None)
                self._remember_resolved(row.txn, False)
                self._state.delete_half(row.txn)
                continue
            row.checks += 1
            interval = cfg.transaction_check_interval_ms * (2 ** min(row.checks - 1, 20))
            row.next_check = now + min(interval, cfg.transaction_check_max_interval_ms)
            self._state.put_half(row)
            if self._checker is None:
                continue
            m = await self._read_one(row.topic, row.qid, row.qoff)
            if m is None:
                continue
            view = replace(m, topic=row.real_topic,
                           queue_id=int(m.properties.get(PROP_ORIGIN_QUEUE_ID, "0")))
            check = TransactionCheck(row.txn, row.real_topic, view, row.producer_group,
                                     row.client, row.checks)
            self._spawn(self._run_check(self._checker, check))

    @staticmethod
    async def _run_check(checker: TransactionChecker, check: TransactionCheck) -> None:
        try:
            asked = await checker(check)
            if not asked:
                log.info("transaction %s: no producer to ask (check %d)",
                         check.transaction_id, check.check_number)
        except Exception:
            log.exception("transaction checker failed for %s", check.transaction_id)

    # ================================================================= consuming
    def register_consumer(self, *, group: ConsumerGroup, topic: str, client_id: str) -> None:
        """Note a consumer early (Settings / heartbeat). For broadcast groups this fixes where
        the client starts (``DeliveryConfig.broadcast_start``) before its first receive."""
        self._groups[group.key] = group
        if group.broadcast:
            now = self._now()
            self._registered.setdefault((group.key, topic, client_id), now)
            self._broadcast_seen[(group.key, client_id)] = now

    async def _cursor(self, group: ConsumerGroup, topic: str, queue_id: int,
                      client_id: str) -> Cursor:
        consumer = client_id if group.broadcast else ""
        key = (group.key, topic, queue_id, consumer)
        cur = self._cursors.get(key)
        if cur is not None:
            return cur
        lo, hi = self._store.queue_bounds(topic, queue_id)
        if group.broadcast:
            start = hi if self._cfg.broadcast_start == "latest" else lo
            since = self._registered.setdefault((group.key, topic, client_id), self._now())
            offset_for_time = getattr(self._store, "offset_for_time", None)
            if self._cfg.broadcast_start == "latest" and offset_for_time is not None:
                start = min(max(await offset_for_time(topic, queue_id, since), lo), hi)
        else:
            start = lo if self._cfg.clustering_start == "earliest" else hi
        cur = self._cursors.setdefault(key, Cursor(key, start))
        self._state.put_cursor(key, cur.base, cur.nxt)
        return cur

    def _check_invisible(self, invisible_ms: int) -> None:
        if not self._cfg.min_invisible_ms <= invisible_ms <= self._cfg.max_invisible_ms:
            raise IllegalInvisibleTimeError(
                f"invisible duration {invisible_ms} ms outside "
                f"[{self._cfg.min_invisible_ms}, {self._cfg.max_invisible_ms}]")

    async def receive(
        self,
        *,
        group: ConsumerGroup,
        topic: str,
        client_id: str,
        max_messages: int,
        invisible_ms: int | None,
        filter: MessageFilter = MATCH_ALL,
        long_poll_ms: int = 0,
        queue_id: int | None = None,
    ) -> list[Delivery]:
        """Pop up to ``max_messages`` visible matching messages of ``topic`` for ``group``.

        ``invisible_ms=None`` means auto-renew (PushConsumer): the engine picks the duration and
        renews it until ack, ``release_client`` or ``auto_renew_max_ms``. ``queue_id`` None or
        negative = any queue. Waits up to ``long_poll_ms`` when nothing is available, returning
        as soon as something arrives. Redeliveries come before new messages. FIFO groups: a
        queue is locked while anything received from it is unacked. Raises
        ``IllegalInvisibleTimeError`` for a duration outside the configured bounds.
        """
        if not self._running:
            raise EngineStoppedError("delivery engine is not running")
        auto_renew = invisible_ms is None
        if invisible_ms is None:
            invisible_ms = self._cfg.auto_renew_invisible_ms
        else:
            self._check_invisible(invisible_ms)
        self._groups[group.key] = group
        want = max(1, min(max_messages, self._cfg.max_batch))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + max(0, long_poll_ms) / 1000
        # One waiting receive per consumer is woken per notification (notify.py).
        wait_key = (group.key, client_id if group.broadcast else "")
        # Finding nothing tells the consumer's other receives something only when this one
        # looks at one queue. (A filter does not narrow it: the group's cursor moves past what
        # the filter skips, as RocketMQ expects one subscription per group.)
        one_queue = queue_id is not None and queue_id >= 0
        woken = False
        while True:
            seen = self._notifier.version(topic)
            contended: list[Cursor] = []
            out = await self._collect(group, topic, client_id, want, invisible_ms, auto_renew,
                                      filter, queue_id, contended)
            if woken and (len(out) >= want or (one_queue and not out)):
                # Maybe more than this receive could take, or something it may not take: let
                # the next receive of the consumer that was waiting look too.
                self._notifier.pass_on(topic, wait_key)
            remaining = give_up - loop.time()
            if out or remaining <= 0 or not self._running:
                return out
            if contended:
                # Skipped a cursor another receive was reading: it may hold a backlog, so wait
                # for it to be released (not for a put, which may never come), then look again.
                await _wait_idle(contended, remaining)
                woken = False
                continue
            woken = await self._notifier.wait(topic, seen, remaining, wait_key)

    async def _collect(self, group: ConsumerGroup, topic: str, client_id: str, want: int,
                       invisible_ms: int, auto_renew: bool, flt: MessageFilter,
                       queue_id: int | None,
                       contended: list[Cursor] | None = None) -> list[Delivery]:
        """One pass over the queues. Cursors skipped because another receive is reading them
        are added to ``contended`` (the caller waits for one to be released, then retries)."""
        qids = [queue_id] if queue_id is not None and queue_id >= 0 else self._store.queues(topic)
        if not qids:
            return []
        rot_key = (group.key, topic)
        start = self._rotation.get(rot_key, 0) % len(qids)
        self._rotation[rot_key] = start + 1
        out: list[Delivery] = []
        cursors = self._cursors
        gkey, consumer = group.key, (client_id if group.broadcast else "")
        if consumer:
            self._broadcast_seen[(gkey, consumer)] = self._now()
        for q in qids[start:] + qids[:start]:
            if len(out) >= want:
                break
            cur = cursors.get((gkey, topic, q, consumer))
            if cur is None:
                cur = await self._cursor(group, topic, q, client_id)
            if group.fifo and cur.inflight_count > 0:
                continue  # FIFO queue lock: woken by the notifier when it unlocks
            if cur.busy:
                # Worth waiting for only if it has something left (a redelivery or unread
                # entries); an idle empty queue read by others is the notifier's business.
                if contended is not None and (
                        cur.peek_ready() or cur.nxt < self._store.queue_bounds(topic, q)[1]):
                    contended.append(cur)
                continue
            cur.busy = True
            try:
                await self._take(cur, group, topic, q, client_id, want - len(out),
                                 invisible_ms, auto_renew, flt, out)
            finally:
                cur.release()
        return out

    async def _take(self, cur: Cursor, group: ConsumerGroup, topic: str, q: int, client_id: str,
                    want: int, invisible_ms: int, auto_renew: bool, flt: MessageFilter,
                    out: list[Delivery]) -> None:
        """Move up to ``want`` entries of one cursor into a new batch: redeliveries first."""
        strict_fifo = group.fifo and self._cfg.fifo_one_per_group
        seen_groups: set[str] = set()
        msgs: list[StoredMessage] = []
        attempts: list[int] = []
        # 1. redeliveries (entries whose invisibility ran out), in queue order. An expired
        # batch makes a run of ready offsets: one store read serves the run, not one per entry.
        got: dict[int, StoredMessage] = {}
        while len(msgs) < want and cur.peek_ready():
            off = cur.ready[0]
            old, idx = cur.pending[off]
            m = got.pop(off, None)
            if m is None:
                res = await self._store.read(topic, q, off,
                                             max_count=max(1, min(want - len(msgs), 32)))
                got = ({x.queue_offset: x for x in res.messages}
                       if res.status is ReadStatus.FOUND else {})
                m = got.pop(off, None)
            if m is None:  # gone (retention): nothing left to deliver
                cur.pop_ready()
                self._resolve(old, idx, moved=True)
                cur.remove_pending(off)
                continue
            if strict_fifo:
                mg = m.properties.get(PROP_MESSAGE_GROUP, "")
                if mg in seen_groups:
                    break
                seen_groups.add(mg)
            cur.pop_ready()
            self._resolve(old, idx, moved=True)
            msgs.append(m)
            attempts.append(old.attempts[idx] + 1)
        # 2. new messages (FIFO: only once no redelivery of this queue is waiting)
        if not (group.fifo and cur.peek_ready()):
            await self._take_new(cur, topic, q, want, flt, strict_fifo, seen_groups, msgs,
                                 attempts)
        if msgs:
            self._issue(cur, group, topic, client_id, msgs, attempts, invisible_ms, auto_renew,
                        out)
        self._state.touch_cursor(cur)

    async def _take_new(self, cur: Cursor, topic: str, q: int, want: int, flt: MessageFilter,
                        strict_fifo: bool, seen_groups: set[str], msgs: list[StoredMessage],
                        attempts: list[int]) -> None:
        """Append new messages from ``cur.nxt`` on to ``msgs`` (up to ``want`` in all).

        Reads ahead: an unfiltered store read asks for ``_READ_AHEAD`` messages and the ones
        this receive does not take stay on the cursor (``Cursor.ahead``) for the next receive,
        so one executor round trip serves several receives. Stored messages never change, and
        the buffer is used only while it starts exactly at ``cur.nxt`` (and is young), so it
        cannot skip or repeat anything; filtered reads are not buffered (they skip entries).
        """
        predicate = flt.tag_hash_predicate
        everything = _matches_everything(flt)
        for _ in range(64):  # bounded: a filter that matches nothing must not spin forever
            room = want - len(msgs)
            if room <= 0:
                return
            chunk = self._take_ahead(cur)
            if chunk is not None:
                end, hi = cur.ahead_end, cur.ahead_hi
            else:
                count = room if predicate is not None else max(room, _READ_AHEAD)
                res = await self._store.read(topic, q, cur.nxt, max_count=count,
                                             max_bytes=_READ_AHEAD_BYTES, tag_filter=predicate)
                if res.status in (ReadStatus.OFFSET_TOO_SMALL, ReadStatus.OFFSET_OVERFLOW,
                                  ReadStatus.CORRUPTED):
                    if res.status is ReadStatus.CORRUPTED:
                        log.error("skipping corrupted entry %s/%s@%s: %s", topic, q, cur.nxt,
                                  res.detail)
                    cur.nxt = res.next_offset
                    continue
                if res.status is not ReadStatus.FOUND:
                    return
                chunk, end, hi = res.messages, res.next_offset, res.max_offset
            left: list[StoredMessage] = []
            if everything and not strict_fifo:
                # No filter, no per-group limit: take a run as a whole (the common case).
                if len(chunk) > room:
                    left = chunk[room:]
                    chunk = chunk[:room]
                msgs.extend(chunk)
                attempts.extend([1] * len(chunk))
                if left:
                    cur.nxt = chunk[-1].queue_offset + 1
            else:
                for i, m in enumerate(chunk):
                    if strict_fifo:
                        mg = m.properties.get(PROP_MESSAGE_GROUP, "")
                        if mg in seen_groups:
                            left = chunk[i:]
                            break
                    cur.nxt = m.queue_offset + 1
                    if flt.matches(m.tag, m.properties):
                        if strict_fifo:
                            seen_groups.add(mg)
                        msgs.append(m)
                        attempts.append(1)
                        if len(msgs) >= want:
                            left = chunk[i + 1:]
                            break
            if left:
                if predicate is None:  # contiguous: keep for the next receive
                    self._keep_ahead(cur, left, end, hi)
                return
            cur.nxt = max(cur.nxt, end)
            if cur.nxt >= hi:
                return

    def _take_ahead(self, cur: Cursor) -> list[StoredMessage] | None:
        """The cursor's read-ahead messages if still usable (they start at ``cur.nxt``)."""
        ahead = cur.ahead
        if not ahead:
            return None
        cur.ahead = None
        self._ahead_lru.pop(cur.key, None)
        if ahead[0].queue_offset != cur.nxt or time.monotonic() - cur.ahead_at > _AHEAD_MAX_AGE_S:
            return None
        return ahead

    def _keep_ahead(self, cur: Cursor, left: list[StoredMessage], end: int, hi: int) -> None:
        cur.ahead, cur.ahead_end, cur.ahead_hi = left, end, hi
        cur.ahead_at = time.monotonic()
        lru = self._ahead_lru
        lru[cur.key] = cur
        lru.move_to_end(cur.key)
        if len(lru) > _AHEAD_CURSORS:  # bound memory: drop the oldest cursor's buffer
            _key, old = lru.popitem(last=False)
            old.ahead = None

    def _issue(self, cur: Cursor, group: ConsumerGroup, topic: str, client_id: str,
               msgs: list[StoredMessage], attempts: list[int], invisible_ms: int,
               auto_renew: bool, out: list[Delivery]) -> None:
        assert self._codec is not None
        now = self._now()
        deadline = now + invisible_ms
        batch = Batch(self._next_batch, cur.key, client_id, [m.queue_offset for m in msgs],
                      attempts, 0, deadline, auto_renew, now, group.max_delivery_attempts)
        self._next_batch += 1
        self._batches[batch.id] = batch
        heapq.heappush(self._expiry, (deadline, batch.id))
        self._state.put_batch(batch)
        handles = self._codec.encode_batch(group.key, topic, batch.id, len(msgs), deadline)
        cur.add_pending_batch(batch)
        new = _tuple_new
        out.extend([new(Delivery, (m, h, a, deadline))
                    for m, h, a in zip(msgs, handles, attempts)])
        # The batch's own lists (never mutated): the ring shares them instead of copying.
        self.trace.record_many("delivered", group.key, topic, cur.key[2], batch.offsets,
                               client_id, batch.attempts, now)

    def _resolve(self, batch: Batch, index: int, *, moved: bool) -> bool:
        """Mark one entry of ``batch`` finished; drop the batch when all are. False if it was."""
        bit = 1 << index
        if batch.resolved & bit:
            return False
        batch.resolved |= bit
        if moved:
            batch.moved |= bit
        if batch.done:
            self._batches.pop(batch.id, None)
            self._state.delete_batch(batch.id)
            if batch.moved:  # remember superseded handles so they answer EXPIRED, not OK
                self._moved[batch.id] = batch.moved
                if len(self._moved) > _MOVED_MEMORY:
                    self._moved.popitem(last=False)
        else:
            self._state.put_batch(batch)
        return True

    def _lookup(self, group: ConsumerGroup, topic: str, handle: str,
                now: int | None = None) -> tuple[Batch, int] | AckStatus:
        """The live entry a handle names, or why it does not name one."""
        assert self._codec is not None
        r = self._codec.verify(group.key, topic, handle)
        if r is None:
            return AckStatus.INVALID_HANDLE
        batch_id, index, deadline_ms = r
        batch = self._batches.get(batch_id)
        if now is None:
            now = self._now()
        if batch is None or index >= len(batch.offsets):
            if self._moved.get(batch_id, 0) >> index & 1:
                return AckStatus.EXPIRED
            # Finished batches are forgotten: a repeat ack before the deadline is harmless.
            return AckStatus.ALREADY_ACKED if now < deadline_ms else AckStatus.EXPIRED
        bit = 1 << index
        if batch.resolved & bit:
            return AckStatus.EXPIRED if batch.moved & bit else AckStatus.ALREADY_ACKED
        if batch.expired or (not batch.auto_renew and now >= batch.deadline):
            return AckStatus.EXPIRED
        return batch, index

    def _finish(self, batch: Batch, index: int) -> None:
        """Ack (or dead-letter) one live entry: it leaves the pending set for good."""
        self._resolve(batch, index, moved=False)
        cur = self._cursors.get(batch.key)
        if cur is not None:
            cur.remove_pending(batch.offsets[index])
            self._state.touch_cursor(cur)
            if cur.inflight_count == 0:
                group = self._groups.get(batch.key[0])
                if group is not None and group.fifo:
                    self._notifier.notify(batch.key[1])  # the FIFO queue is unlocked

    async def ack(self, *, group: ConsumerGroup, topic: str, receipt_handle: str) -> AckStatus:
        """Acknowledge one delivery; the committed offset advances past contiguous acks."""
        now = self._now()
        found = self._lookup(group, topic, receipt_handle, now)
        if type(found) is not tuple:
            return found  # type: ignore[return-value]
        batch, index = found  # type: ignore[misc]
        offset = batch.offsets[index]
        self._resolve(batch, index, moved=False)
        self.trace.record_many("acked", batch.key[0], topic, batch.key[2], (offset,),
                               batch.client, (batch.attempts[index],), now)
        cur = self._cursors.get(batch.key)
        if cur is not None:
            cur.pending.pop(offset, None)
            cur.ready_set.discard(offset)
            self._state.touch_cursor(cur)
            if cur.inflight_count == 0 and self._groups.get(batch.key[0], group).fifo:
                self._notifier.notify(cur.key[1])  # the FIFO queue is unlocked
        return AckStatus.OK

    def live(self, *, group: ConsumerGroup, topic: str, receipt_handles: Sequence[str]) -> list[bool]:
        """For each handle: whether it still names an in-flight delivery that an ack would
        accept now (not acked, not expired, not superseded). Changes nothing."""
        now = self._now()
        return [type(self._lookup(group, topic, h, now)) is tuple for h in receipt_handles]

    async def ack_many(self, *, group: ConsumerGroup, topic: str,
                       receipt_handles: Sequence[str]) -> list[AckStatus]:
        """``ack`` for each handle, in order (one AckMessage request's entries): the same
        statuses as acking them one by one, for less work per handle."""
        return self._ack_all(group, topic, receipt_handles, self._now())

    def _ack_all(self, group: ConsumerGroup, topic: str, handles: Sequence[str],
                 now: int) -> list[AckStatus]:
        """The ack hot path: per handle a MAC check (cached per batch), a bit flip and a pending
        removal; per touched batch one state mark and one trace record; per touched cursor one
        state mark and the FIFO unlock check. Anything unusual goes through ``_lookup``."""
        assert self._codec is not None
        gkey = group.key
        verify = self._codec.verify
        batches = self._batches
        cursors = self._cursors
        ok, invalid = AckStatus.OK, AckStatus.INVALID_HANDLE
        out: list[AckStatus] = []
        acked: dict[int, tuple[Batch, list[int], list[int]]] = {}
        touched: dict[CursorKey, Cursor] = {}
        for h in handles:
            r = verify(gkey, topic, h)
            if r is None:
                out.append(invalid)
                continue
            batch = batches.get(r[0])
            index = r[1]
            if (batch is None or index >= len(batch.offsets) or batch.resolved >> index & 1
                    or batch.expired or (not batch.auto_renew and now >= batch.deadline)):
                found = self._lookup(group, topic, h, now)  # the precise non-OK status
                if type(found) is not tuple:
                    out.append(found)  # type: ignore[arg-type]
                    continue
                batch, index = found  # type: ignore[misc]
            offset = batch.offsets[index]
            self._resolve(batch, index, moved=False)
            rec = acked.get(batch.id)
            if rec is None:
                rec = acked[batch.id] = (batch, [], [])
            rec[1].append(offset)
            rec[2].append(batch.attempts[index])
            cur = touched.get(batch.key)
            if cur is None:
                cur = cursors.get(batch.key)
                if cur is None:
                    out.append(ok)
                    continue
                touched[batch.key] = cur
            cur.pending.pop(offset, None)
            cur.ready_set.discard(offset)
            out.append(ok)
        record = self.trace.record_many
        for batch, offsets, attempts in acked.values():
            record("acked", batch.key[0], topic, batch.key[2], offsets, batch.client, attempts,
                   now)
        if touched:
            fifo = self._groups.get(gkey, group).fifo
            for cur in touched.values():
                self._state.touch_cursor(cur)
                if fifo and cur.inflight_count == 0:
                    self._notifier.notify(cur.key[1])  # the FIFO queue is unlocked
        return out

    async def change_invisible(
        self, *, group: ConsumerGroup, topic: str, receipt_handle: str, invisible_ms: int
    ) -> ChangeInvisibleResult:
        """Make the delivery visible again ``invisible_ms`` from now (nack / extend). The old
        handle stops working; the result carries the new one. The next delivery counts +1."""
        try:
            self._check_invisible(invisible_ms)
        except IllegalInvisibleTimeError:
            return ChangeInvisibleResult(ChangeInvisibleStatus.ILLEGAL_INVISIBLE_TIME,
                                         receipt_handle)
        found = self._lookup(group, topic, receipt_handle)
        if isinstance(found, AckStatus):
            status = (ChangeInvisibleStatus.INVALID_HANDLE if found is AckStatus.INVALID_HANDLE
                      else ChangeInvisibleStatus.EXPIRED)
            return ChangeInvisibleResult(status, receipt_handle)
        batch, index = found
        assert self._codec is not None
        offset, attempt = batch.offsets[index], batch.attempts[index]
        self._resolve(batch, index, moved=True)
        now = self._now()
        deadline = now + invisible_ms
        new = Batch(self._next_batch, batch.key, batch.client, [offset], [attempt], 0, deadline,
                    False, now, batch.max_attempts)
        self._next_batch += 1
        self._batches[new.id] = new
        heapq.heappush(self._expiry, (deadline, new.id))
        self._state.put_batch(new)
        cur = self._cursors[batch.key]
        cur.add_pending(offset, new, 0)
        handle = self._codec.encode(group.key, topic, Receipt(new.id, 0, deadline))
        return ChangeInvisibleResult(ChangeInvisibleStatus.OK, handle, deadline)

    async def forward_to_dlq(
        self, *, group: ConsumerGroup, topic: str, receipt_handle: str
    ) -> DlqStatus:
        """Copy the delivered message to ``%DLQ%<group>`` and ack it (unblocks a FIFO queue)."""
        found = self._lookup(group, topic, receipt_handle)
        if isinstance(found, AckStatus):
            if found is AckStatus.INVALID_HANDLE:
                return DlqStatus.INVALID_HANDLE
            return DlqStatus.OK if found is AckStatus.ALREADY_ACKED else DlqStatus.EXPIRED
        batch, index = found
        if not await self._dead_letter(batch, index):
            return DlqStatus.STORE_ERROR
        return DlqStatus.OK

    async def _dead_letter(self, batch: Batch, index: int) -> bool:
        grp, topic, q, _consumer = batch.key
        m = await self._read_one(topic, q, batch.offsets[index])
        if m is not None:
            namespace, name = split_stored_name(grp)
            props = dict(m.properties)
            # Not __ORIGIN_TOPIC: a DLQ copy is delivered as a message *of the DLQ topic* (acks
            # name that topic); RocketMQ keeps the original topic in RETRY_TOPIC the same way.
            props[PROP_RETRY_TOPIC] = m.topic
            props[PROP_ORIGIN_QUEUE_ID] = str(m.queue_id)
            props[PROP_ORIGIN_MSG_ID] = m.properties.get(PROP_ORIGIN_MSG_ID) or m.msg_id
            props[PROP_DLQ_ORIGIN] = grp
            dead = NewMessage(topic=dlq_topic(namespace, name), queue_id=0, body=bytes(m.body),
                              tag=m.tag, keys=m.keys, properties=props,
                              born_timestamp_ms=m.born_timestamp_ms, born_host=m.born_host,
                              flags=m.flags | MessageFlag.DLQ,
                              reconsume_times=batch.attempts[index])
            res = await self._store.append(dead)
            if not res.ok:
                log.warning("DLQ append for %s failed: %s", grp, res.status)
                return False
            self._notifier.notify(dead.topic)
            self.trace.record("dead_lettered", group=grp, topic=topic, queue_id=q,
                              offset=batch.offsets[index], client_id=batch.client,
                              attempt=batch.attempts[index], time_ms=self._now())
        if not batch.resolved >> index & 1:
            self._finish(batch, index)
        return True

    async def _expire(self, now: int) -> None:
        cfg = self._cfg
        dead: list[tuple[Batch, int]] = []
        while self._expiry and self._expiry[0][0] <= now:
            deadline, bid = heapq.heappop(self._expiry)
            b = self._batches.get(bid)
            if b is None or b.deadline != deadline or b.expired:
                continue
            if b.auto_renew:
                if now - b.created < cfg.auto_renew_max_ms:
                    b.deadline = now + cfg.auto_renew_invisible_ms
                else:  # renewed long enough: retry after the group's backoff
                    b.auto_renew = False
                    group = self._groups.get(b.key[0])
                    attempt = max(b.attempts[i] for i in b.unresolved())
                    b.deadline = now + (group.backoff_ms(attempt) if group else 1000)
                heapq.heappush(self._expiry, (b.deadline, b.id))
                self._state.put_batch(b)
                continue
            b.expired = True
            cur = self._cursors.get(b.key)
            for i in list(b.unresolved()):
                if b.attempts[i] >= b.max_attempts:
                    dead.append((b, i))
                elif cur is not None:
                    cur.make_ready(b.offsets[i])
            self._notifier.notify(b.key[1])
        for b, i in dead:
            if not await self._dead_letter(b, i):
                b.expired = False  # try again at the next tick
                b.deadline = now + 1000
                heapq.heappush(self._expiry, (b.deadline, b.id))

    def release_client(self, client_id: str) -> None:
        """The client is gone: its auto-renewed deliveries become visible after
        ``release_delay_ms``; broadcast offsets of the client are kept."""
        deadline = self._now() + self._cfg.release_delay_ms
        for b in self._batches.values():
            if b.client == client_id and b.auto_renew:
                b.auto_renew = False
                b.deadline = min(b.deadline, deadline)
                heapq.heappush(self._expiry, (b.deadline, b.id))
                self._state.put_batch(b)

    def _prune_broadcast(self, now: int) -> None:
        """Forget broadcast clients idle for ``broadcast_idle_prune_ms``: their cursors, their
        in-flight batches (nobody else would ever receive those) and their start times. Checked
        at most once a minute."""
        if now < self._next_prune:
            return
        self._next_prune = now + 60_000
        idle = [(gc, seen) for gc, seen in self._broadcast_seen.items()
                if now - seen >= self._cfg.broadcast_idle_prune_ms]
        for (gkey, client), seen in idle:
            del self._broadcast_seen[(gkey, client)]
            keys = [k for k in self._cursors if k[0] == gkey and k[3] == client]
            for key in keys:
                del self._cursors[key]
                self._ahead_lru.pop(key, None)
                self._state.delete_cursor(key)
            for bid in [b.id for b in self._batches.values() if b.key in keys]:
                del self._batches[bid]
                self._state.delete_batch(bid)
            for reg in [r for r in self._registered if r[0] == gkey and r[2] == client]:
                del self._registered[reg]
            log.info("broadcast client %s of group %s idle for %d s: %d cursor(s) dropped",
                     client, gkey, (now - seen) // 1000, len(keys))

    def group_lag(self, group: ConsumerGroup, topic: str, client_id: str = "") -> list[QueueLag]:
        """Per-queue lag of ``group`` on ``topic`` (broadcast: of ``client_id``). No I/O."""
        consumer = client_id if group.broadcast else ""
        lags = []
        for q in self._store.queues(topic):
            lo, hi = self._store.queue_bounds(topic, q)
            cur = self._cursors.get((group.key, topic, q, consumer))
            committed = cur.base if cur else (lo if self._cfg.clustering_start == "earliest"
                                              else hi)
            lags.append(QueueLag(q, committed, hi, cur.inflight_count if cur else 0))
        return lags

    def committed_offset(self, group: ConsumerGroup, topic: str, queue_id: int,
                         client_id: str = "") -> int | None:
        """The group's committed offset on one queue (None before its first receive)."""
        consumer = client_id if group.broadcast else ""
        cur = self._cursors.get((group.key, topic, queue_id, consumer))
        return cur.base if cur else None


async def _wait_idle(cursors: list[Cursor], timeout_s: float) -> None:
    """Return once any of ``cursors`` is no longer being read (or after ``timeout_s``)."""
    waits = []
    for cur in cursors:
        if not cur.busy:
            return
        waits.append(asyncio.ensure_future(cur.idle_event().wait()))
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


def _any_delayed(msgs: Sequence[NewMessage], now: int) -> bool:
    """Whether a message of ``msgs`` is due after ``now`` (the property test first: it is
    absent from almost every message)."""
    return any(PROP_DELIVERY_TIME_MS in m.properties and (d := _delivery_time(m)) is not None
               and d > now for m in msgs)


def _delivery_time(msg: NewMessage) -> int | None:
    raw = msg.properties.get(PROP_DELIVERY_TIME_MS)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


_tuple_new = tuple.__new__
#: Read-ahead of unfiltered reads: messages per store read, bytes per read, cursors holding a
#: buffer at once (older buffers are dropped), and how long a buffer may be used.
_READ_AHEAD: Final = 128
_READ_AHEAD_BYTES: Final = 1024 * 1024
_AHEAD_CURSORS: Final = 64
_AHEAD_MAX_AGE_S: Final = 1.0


def _matches_everything(flt: MessageFilter) -> bool:
    """True for filters that accept every message (no per-message evaluation needed)."""
    return flt is MATCH_ALL or (type(flt) is TagFilter and not flt.tags)
