"""ReceiveMessage, AckMessage, ChangeInvisibleDuration, ForwardMessageToDeadLetterQueue
(protocol doc §4.8, 4.10-4.12), wired to the delivery engine."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Final

import grpc
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.config import Action, GroupSpec, NamespaceSpec, ResourceKind, TopicSpec
from brokers.node.delivery import (
    AckStatus,
    ChangeInvisibleStatus,
    ConsumerGroup,
    Delivery,
    DlqStatus,
    dlq_topic,
)
from brokers.node.filter import FilterType, compile_filter
from brokers.node.quota import QuotaVerdict

from .boundary import Call, admit, translate, unary
from .codec import _varint, field, response_message_frame, stored_topic, to_delivered_message
from .errors import MqError, Unauthorized
from .route import DLQ_PREFIX, resolve_topic
from .runtime import NodeRuntime
from .status import OK_STATUS, OK_STATUS_BYTES, QUOTA_CODES, status

Code = pb.Code
MAX_LONG_POLL_S: Final = 20.0
#: Time kept back from the client's deadline so the stream ends before it (G7).
DEADLINE_RESERVE_S: Final = 0.5
#: How long a FIFO receive of an auto-renewing client can be replayed (replay.py).
REPLAY_AUTO_RENEW_TTL_S: Final = 120.0
_FILTER_TYPES: Final = {pb.TAG: "TAG", pb.SQL: "SQL", pb.FILTER_TYPE_UNSPECIFIED: "TAG"}


def _ms(duration: object) -> int:
    return int(duration.seconds * 1000 + duration.nanos // 1_000_000)  # type: ignore[attr-defined]


def timestamp_frame(now_ns: int | None = None) -> bytes:
    """``ReceiveMessageResponse{delivery_timestamp: now}``: the stream's closing frame."""
    seconds, nanos = divmod(time.time_ns() if now_ns is None else now_ns, 1_000_000_000)
    ts = b"\x08" + _varint(seconds) + (b"\x10" + _varint(nanos) if nanos else b"")
    return b"\x1a" + _varint(len(ts)) + ts


_OK_FRAME: Final = spb.ReceiveMessageResponse(status=OK_STATUS).SerializeToString()
_NOT_FOUND_FRAME: Final = spb.ReceiveMessageResponse(
    status=status(Code.MESSAGE_NOT_FOUND, "no new message")).SerializeToString()


# AckMessageResponse{status = 1, entries = 2}; AckMessageResultEntry{message_id = 1,
# receipt_handle = 2, status = 3}: written directly (test_consume_wire.py parses them back).
_ACK_STATUS_BYTES: Final = {
    result: OK_STATUS_BYTES if result in (AckStatus.OK, AckStatus.ALREADY_ACKED)
    else status(Code.INVALID_RECEIPT_HANDLE,
                f"receipt handle is {result.value.lower().replace('_', ' ')}").SerializeToString()
    for result in AckStatus
}


def _ack_entry(message_id: str, receipt_handle: str, status_bytes: bytes) -> bytes:
    """One ``AckMessageResultEntry`` as field 2 of the response (empty strings left out, as
    protobuf does); one bytes formatting in the usual case, as this runs per acked message."""
    if not (message_id and receipt_handle):
        body = ((field(b"\x0a", message_id.encode()) if message_id else b"")
                + (field(b"\x12", receipt_handle.encode()) if receipt_handle else b"")
                + field(b"\x1a", status_bytes))
        return b"\x12" + _varint(len(body)) + body
    mid = message_id.encode()
    handle = receipt_handle.encode()
    body = b"\x0a%b%b\x12%b%b\x1a%b%b" % (_varint(len(mid)), mid, _varint(len(handle)), handle,
                                          _varint(len(status_bytes)), status_bytes)
    return b"\x12" + _varint(len(body)) + body


def _frames(deliveries: list[Delivery], now_ms: int) -> tuple[list[bytes], int]:
    """The ``ReceiveMessageResponse`` frame of each delivery, and the body bytes they carry
    (one pass, fields unpacked once: this runs for every delivered message)."""
    out = []
    nbytes = 0
    for stored, handle, attempt, until_ms in deliveries:
        nbytes += len(stored.body)
        out.append(response_message_frame(to_delivered_message(
            stored, receipt_handle=handle, delivery_attempt=attempt,
            invisible_duration_s=max(0, until_ms - now_ms) / 1000,
        ).SerializeToString()))
    return out, nbytes


def long_poll_budget_ms(request: spb.ReceiveMessageRequest, remaining_s: float | None) -> int:
    """Polling time: the request's, capped at 20 s and at the deadline minus a reserve."""
    wanted = (
        _ms(request.long_polling_timeout) / 1000
        if request.HasField("long_polling_timeout") else MAX_LONG_POLL_S
    )
    wanted = min(wanted, MAX_LONG_POLL_S)
    if remaining_s is not None:
        wanted = min(wanted, remaining_s - DEADLINE_RESERVE_S)
    return max(0, int(wanted * 1000))


class _Target:
    """Resolved (namespace, group, topic) of a consumer request, ACL-checked."""

    __slots__ = ("ns", "group", "topic", "stored", "engine_group")

    def __init__(self, rt: NodeRuntime, call: Call, group_name: str, topic_name: str) -> None:
        self.ns: NamespaceSpec = call.principal.namespace
        self.topic: TopicSpec = resolve_topic(rt, self.ns, topic_name)
        self.group: GroupSpec = rt.group(self.ns, group_name)
        call.principal.require(ResourceKind.GROUP, self.group.name, Action.SUB)
        if not self.topic.name.startswith(DLQ_PREFIX):
            call.principal.require(ResourceKind.TOPIC, self.topic.name, Action.SUB)
            self.stored = stored_topic(self.ns.name, self.topic.name)
        else:

            # %DLQ%<g> holds the dead letters of group <g> (not of the consuming group).
            dead_group = self.topic.name[len(DLQ_PREFIX):]
            call.principal.require(ResourceKind.GROUP, dead_group, Action.SUB)
            self.stored = dlq_topic(self.ns.name, dead_group)
        self.engine_group: ConsumerGroup = rt.consumer_group(self.ns, self.group)


class ConsumeHandlers:
    runtime: NodeRuntime

    async def ReceiveMessage(
        self, request: spb.ReceiveMessageRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        """Status frame, one frame per message, ``delivery_timestamp`` frame (§4.8).

        Yields serialized ``ReceiveMessageResponse`` bytes (registered without a response
        serializer, servicer.RAW_RESPONSES): one serialization per message, no wrapper copy.
        """
        try:
            frames = await self._receive(request, context)
        except Exception as exc:  # noqa: BLE001 - status frame, then end (§4.8)
            yield spb.ReceiveMessageResponse(
                status=translate(exc, "ReceiveMessage")).SerializeToString()
            if not isinstance(exc, Unauthorized):  # refused callers get exactly one frame
                yield timestamp_frame()
            return
        if not frames:
            yield _NOT_FOUND_FRAME
        else:
            yield _OK_FRAME
            for frame in frames:
                yield frame
        yield timestamp_frame()

    async def _receive(
        self, request: spb.ReceiveMessageRequest, context: grpc.aio.ServicerContext
    ) -> list[bytes]:
        """The delivered messages as serialized ReceiveMessageResponse frames."""
        rt = self.runtime
        queue = request.message_queue
        call = admit(rt, context,
                     [request.group.resource_namespace, queue.topic.resource_namespace],
                     method="ReceiveMessage")
        target = _Target(rt, call, request.group.name, queue.topic.name)
        engine = rt.delivery
        decision = rt.quotas.check_receive(target.ns.name)
        if decision.verdict is not QuotaVerdict.OK:
            rt.metrics.throttle(target.ns.name, "receive")
            raise MqError(decision.detail, QUOTA_CODES[decision.verdict])
        expr = request.filter_expression
        filt = compile_filter(
            FilterType(_FILTER_TYPES.get(expr.type, "TAG")), expr.expression or "*"
        )
        invisible_ms: int | None
        if request.auto_renew:
            invisible_ms = None
        elif request.HasField("invisible_duration"):
            invisible_ms = _ms(request.invisible_duration)
        else:
            raise MqError("invisible_duration is required without auto_renew",
                          Code.ILLEGAL_INVISIBLE_TIME)
        replay_key = None
        if target.group.fifo and request.attempt_id:
            replay_key = (target.ns.name, target.group.name, target.stored, call.client_id,
                          request.attempt_id)
            again = rt.replay.recall(replay_key, lambda handles: engine.live(
                group=target.engine_group, topic=target.stored, receipt_handles=handles))
            if again:  # the same attempt: its reply was lost, the messages are still in flight
                return again
        batch = request.batch_size if request.batch_size > 0 else 32
        # Like the proxy, pop from any queue of this broker and ignore message_queue.id, FIFO
        # groups included: the engine's queue lock keeps each message group in order. The
        # Node.js SimpleConsumer (1.0.8) always asks for queue 0 (its load balancer compares
        # queueId with the master broker id), so honouring the id starved queues 1..n-1.
        queue_id = None
        deliveries = await engine.receive(
            group=target.engine_group, topic=target.stored, client_id=call.client_id,
            max_messages=min(batch, 32), invisible_ms=invisible_ms, filter=filt,
            long_poll_ms=long_poll_budget_ms(request, context.time_remaining()),
            queue_id=queue_id,
        )
        if not deliveries:
            return []
        out, nbytes = _frames(deliveries, int(time.time() * 1000))
        if replay_key is not None:
            # auto-renewed deliveries stay in flight for long; a retry comes within seconds
            ttl_s = invisible_ms / 1000 if invisible_ms is not None else REPLAY_AUTO_RENEW_TTL_S
            rt.replay.remember(replay_key, out, [d.receipt_handle for d in deliveries], ttl_s)
        rt.quotas.charge_receive(target.ns.name, len(out))
        rt.metrics.delivered(target.ns.name, target.topic.name, len(out), nbytes)
        return out

    @unary(spb.AckMessageResponse, raw=True)
    async def AckMessage(
        self, request: spb.AckMessageRequest, context: grpc.aio.ServicerContext
    ) -> bytes:
        """Returns the serialized AckMessageResponse (registered raw, servicer.RAW_RESPONSES):
        a consumer acks every message it gets, up to 32 entries per request."""
        rt = self.runtime
        call = admit(rt, context, [request.group.resource_namespace,
                                   request.topic.resource_namespace], method="AckMessage")
        target = _Target(rt, call, request.group.name, request.topic.name)
        engine = rt.delivery
        request_entries = list(request.entries)
        if len(request_entries) == 1:
            results = [await engine.ack(group=target.engine_group, topic=target.stored,
                                        receipt_handle=request_entries[0].receipt_handle)]
        else:  # one engine call for the whole request: same statuses, less work per handle
            results = await engine.ack_many(
                group=target.engine_group, topic=target.stored,
                receipt_handles=[e.receipt_handle for e in request_entries])
        if not results:
            raise MqError("no ack entry in request", Code.BAD_REQUEST)
        failed = b""
        entries = []
        for e, result in zip(request_entries, results):
            st = _ACK_STATUS_BYTES[result]
            if st is not OK_STATUS_BYTES:
                failed = failed or st
            entries.append(_ack_entry(e.message_id, e.receipt_handle, st))
        # The client reads only the top status: the first failing entry's, else OK.
        return field(b"\x0a", failed or OK_STATUS_BYTES) + b"".join(entries)

    @unary(spb.ChangeInvisibleDurationResponse)
    async def ChangeInvisibleDuration(
        self, request: spb.ChangeInvisibleDurationRequest, context: grpc.aio.ServicerContext
    ) -> spb.ChangeInvisibleDurationResponse:
        try:
            return await self._change_invisible(request, context)
        except Exception as exc:  # noqa: BLE001 - keep the handle usable (G9)
            return spb.ChangeInvisibleDurationResponse(
                status=translate(exc, "ChangeInvisibleDuration"),
                receipt_handle=request.receipt_handle,
            )

    async def _change_invisible(
        self, request: spb.ChangeInvisibleDurationRequest, context: grpc.aio.ServicerContext
    ) -> spb.ChangeInvisibleDurationResponse:
        rt = self.runtime
        call = admit(rt, context, [request.group.resource_namespace,
                                   request.topic.resource_namespace],
                     method="ChangeInvisibleDuration")
        target = _Target(rt, call, request.group.name, request.topic.name)
        result = await rt.delivery.change_invisible(
            group=target.engine_group, topic=target.stored,
            receipt_handle=request.receipt_handle,
            invisible_ms=_ms(request.invisible_duration),
        )
        codes = {
            ChangeInvisibleStatus.OK: OK_STATUS,
            ChangeInvisibleStatus.INVALID_HANDLE: status(
                Code.INVALID_RECEIPT_HANDLE, "receipt handle is invalid"),
            ChangeInvisibleStatus.EXPIRED: status(
                Code.INVALID_RECEIPT_HANDLE, "receipt handle has expired"),
            ChangeInvisibleStatus.ILLEGAL_INVISIBLE_TIME: status(
                Code.ILLEGAL_INVISIBLE_TIME, "invisible duration out of range"),
        }
        return spb.ChangeInvisibleDurationResponse(
            status=codes[result.status],
            receipt_handle=result.receipt_handle or request.receipt_handle,
        )

    @unary(spb.ForwardMessageToDeadLetterQueueResponse)
    async def ForwardMessageToDeadLetterQueue(
        self,
        request: spb.ForwardMessageToDeadLetterQueueRequest,
        context: grpc.aio.ServicerContext,
    ) -> spb.ForwardMessageToDeadLetterQueueResponse:
        rt = self.runtime
        call = admit(rt, context, [request.group.resource_namespace,
                                   request.topic.resource_namespace],
                     method="ForwardMessageToDeadLetterQueue")
        target = _Target(rt, call, request.group.name, request.topic.name)
        result = await rt.delivery.forward_to_dlq(
            group=target.engine_group, topic=target.stored, receipt_handle=request.receipt_handle
        )
        codes = {
            DlqStatus.OK: OK_STATUS,
            DlqStatus.INVALID_HANDLE: status(Code.INVALID_RECEIPT_HANDLE,
                                             "receipt handle is invalid"),
            DlqStatus.EXPIRED: status(Code.INVALID_RECEIPT_HANDLE, "receipt handle has expired"),
            DlqStatus.STORE_ERROR: status(Code.INTERNAL_SERVER_ERROR,
                                          "could not write the dead-letter queue"),
        }
        return spb.ForwardMessageToDeadLetterQueueResponse(status=codes[result])
