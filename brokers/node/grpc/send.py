"""SendMessage (protocol doc §4.4): validate, authorize, apply quotas, pick queues, append.

Appends go through the delivery engine, which routes delay and transaction messages.
"""

from __future__ import annotations

import functools
import itertools
import time
import zlib
from collections.abc import Iterator
from typing import Final

import grpc
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.auth import parse_peer
from brokers.node.config import Action, ResourceKind, TopicSpec
from brokers.node.delivery import MessageType
from brokers.node.quota import QuotaVerdict
from brokers.node.store.model import AppendResult, AppendStatus, NewMessage

from .boundary import admit, unary
from .codec import _varint, field, stored_topic, to_new_message
from .errors import MqError
from .route import resolve_topic
from .runtime import NodeRuntime
from .status import APPEND_CODES, OK_STATUS_BYTES, QUOTA_CODES, status
from .validation import allowed_types, check_message, check_request_shape

Code = pb.Code
_ENGINE_TYPES: Final = {pb.NORMAL: MessageType.NORMAL, pb.FIFO: MessageType.FIFO,
                        pb.DELAY: MessageType.DELAY, pb.TRANSACTION: MessageType.TRANSACTION}


class QueueSelector:
    """Round robin per topic for unordered messages; stable hash of the group for FIFO (G16)."""

    def __init__(self) -> None:
        self._counters: dict[str, Iterator[int]] = {}

    def pick(self, key: str, topic: TopicSpec, message_group: str | None) -> int:
        if message_group:
            return zlib.crc32(message_group.encode()) % topic.queues
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = itertools.count()
        return next(counter) % topic.queues


class SendHandlers:
    runtime: NodeRuntime
    selector: QueueSelector

    @unary(spb.SendMessageResponse, raw=True)
    async def SendMessage(
        self, request: spb.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """Returns the serialized SendMessageResponse (registered raw, servicer.RAW_RESPONSES)."""
        rt = self.runtime
        messages = list(request.messages)
        call = admit(rt, context, [m.topic.resource_namespace for m in messages[:1]],
                     method="SendMessage")
        name = check_request_shape(messages)
        ns = call.principal.namespace
        topic = resolve_topic(rt, ns, name)
        call.principal.require(ResourceKind.TOPIC, topic.name, Action.PUB)
        now_ms = int(time.time() * 1000)
        allowed = allowed_types(topic)
        types = [check_message(m, topic, now_ms, allowed) for m in messages]
        sizes = [len(m.body) for m in messages]
        decision = rt.quotas.check_send(ns.name, sizes)
        if decision.verdict is not QuotaVerdict.OK:
            rt.metrics.throttle(ns.name, decision.verdict.value)
            raise MqError(decision.detail, QUOTA_CODES[decision.verdict])
        born_host = _peer_host(call.peer)
        full_topic = stored_topic(ns.name, topic.name)
        pick = self.selector.pick
        new = [
            to_new_message(
                m, stored_topic_name=full_topic,
                queue_id=pick(full_topic, topic, m.system_properties.message_group or None),
                message_type=t, born_host_fallback=born_host,
            )
            for m, t in zip(messages, types)
        ]
        results, txn_ids, recall_handles = await self._append(new, types, call.client_id)
        ok = 0
        nbytes = 0
        top = b""
        entries = []
        for i, (r, txn, size) in enumerate(zip(results, txn_ids, sizes)):
            if r.status is _APPEND_OK:
                ok += 1
                nbytes += size
                msg_id = r.msg_id
                entries.append(_ok_entry(msg_id, txn or msg_id, r.queue_offset,
                                         recall_handles[i] if recall_handles else ""))
            else:
                st = _entry_status_bytes(r)
                # The client reads only the top status (G10): report the first failure there.
                top = top or st
                entries.append(field(b"\x12", field(b"\x0a", st)
                                     + field(b"\x12", r.msg_id.encode())
                                     + field(b"\x1a", (txn or r.msg_id).encode())))
        if ok:
            rt.metrics.sent(ns.name, topic.name, ok, nbytes)
        return field(b"\x0a", top or OK_STATUS_BYTES) + b"".join(entries)

    async def _append(
        self, new: list[NewMessage], types: list[int], client_id: str
    ) -> tuple[list[AppendResult], list[str], list[str] | None]:
        """Store results, transaction ids and (None when there is none) recall handles."""
        engine = self.runtime.delivery
        if len(new) == 1:  # what the SDKs send: no list building around one put
            put = await engine.put(new[0], message_type=_ENGINE_TYPES[types[0]],
                                   producer_client_id=client_id)
            return [put.append], [put.transaction_id], [put.recall_handle] if put.recall_handle else None
        if len(set(types)) == 1:
            puts = await engine.put_many(new, message_type=_ENGINE_TYPES[types[0]])
        else:
            puts = [
                await engine.put(m, message_type=_ENGINE_TYPES[t], producer_client_id=client_id)
                for m, t in zip(new, types)
            ]
        handles = [p.recall_handle for p in puts]
        return ([p.append for p in puts], [p.transaction_id for p in puts],
                handles if any(handles) else None)


# --------------------------------------------------------------------------- response bytes
# SendMessageResponse{status = 1, entries = 2}; SendResultEntry{status = 1, message_id = 2,
# transaction_id = 3, offset = 4}. Built directly: a batch of 16 otherwise spends more on
# protobuf objects for the reply than on validating the request (test_send_wire.py checks the
# bytes parse to the same response).
_APPEND_OK: Final = AppendStatus.OK
_OK_ENTRY_STATUS: Final = b"\x0a" + bytes((len(OK_STATUS_BYTES),)) + OK_STATUS_BYTES


#: Varint bytes of every length a message id or an entry can have (ids are 24 characters).
_LENGTHS: Final = tuple(_varint(n) for n in range(256))


def _ok_entry(message_id: str, transaction_id: str, offset: int, recall_handle: str = "") -> bytes:
    """``SendResultEntry{status OK, message_id, transaction_id, offset, recall_handle}`` as
    field 2 of the response: one bytes formatting, since this runs for every message sent."""
    mid = message_id.encode()
    tid = mid if transaction_id is message_id else transaction_id.encode()
    if len(mid) > 255 or len(tid) > 255 or recall_handle:  # the general (rarer) form
        body = (_OK_ENTRY_STATUS + field(b"\x12", mid) + field(b"\x1a", tid)
                + (b"\x20" + _varint(offset) if offset > 0 else b"")
                + (field(b"\x2a", recall_handle.encode()) if recall_handle else b""))
        return b"\x12" + _varint(len(body)) + body
    body = b"%b\x12%b%b\x1a%b%b%b" % (
        _OK_ENTRY_STATUS, _LENGTHS[len(mid)], mid, _LENGTHS[len(tid)], tid,
        b"\x20" + _varint(offset) if offset > 0 else b"")
    return b"\x12" + _varint(len(body)) + body


def _entry_status_bytes(result: AppendResult) -> bytes:
    return status(APPEND_CODES[result.status],
                  result.detail or result.status.value).SerializeToString()


@functools.lru_cache(maxsize=4096)
def _peer_host(peer: str) -> str:
    address = parse_peer(peer)
    return str(address) if address is not None else ""
