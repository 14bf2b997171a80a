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
from .codec import stored_topic, to_new_message
from .errors import MqError
from .route import resolve_topic
from .runtime import NodeRuntime
from .status import APPEND_CODES, OK_STATUS, QUOTA_CODES, status
from .validation import check_message, check_request_shape

Code = pb.Code
_ENGINE_TYPES: Final = {pb.NORMAL: "NORMAL", pb.FIFO: "FIFO", pb.DELAY: "DELAY",
                        pb.TRANSACTION: "TRANSACTION"}


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

    @unary(spb.SendMessageResponse)
    async def SendMessage(
        self, request: spb.SendMessageRequest, context: grpc.aio.ServicerContext
    ) -> spb.SendMessageResponse:
        rt = self.runtime
        messages = list(request.messages)
        call = admit(rt, context, [m.topic.resource_namespace for m in messages[:1]],
                     method="SendMessage")
        name = check_request_shape(messages)
        ns = call.principal.namespace
        topic = resolve_topic(rt, ns, name)
        call.principal.require(ResourceKind.TOPIC, topic.name, Action.PUB)
        now_ms = int(time.time() * 1000)
        types = [check_message(m, topic, now_ms) for m in messages]
        sizes = [len(m.body) for m in messages]
        decision = rt.quotas.check_send(ns.name, sizes)
        if decision.verdict is not QuotaVerdict.OK:
            rt.metrics.throttle(ns.name, decision.verdict.value)
            raise MqError(decision.detail, QUOTA_CODES[decision.verdict])
        born_host = _peer_host(call.peer)
        full_topic = stored_topic(ns.name, topic.name)
        new = [
            to_new_message(
                m, stored_topic_name=full_topic,
                queue_id=self.selector.pick(full_topic, topic,
                                            m.system_properties.message_group or None),
                message_type=t, born_host_fallback=born_host,
            )
            for m, t in zip(messages, types)
        ]
        results, txn_ids = await self._append(new, types, call.client_id)
        ok = [r for r in results if r.status is AppendStatus.OK]
        if ok:
            nbytes = sum(s for s, r in zip(sizes, results) if r.status is AppendStatus.OK)
            rt.metrics.sent(ns.name, topic.name, len(ok), nbytes)
        entries = [
            spb.SendResultEntry(
                status=_entry_status(r), message_id=r.msg_id, transaction_id=txn or r.msg_id,
                offset=max(r.queue_offset, 0),
            )
            for r, txn in zip(results, txn_ids)
        ]
        failed = [e.status for e in entries if e.status.code != Code.OK]
        # The client reads only the top status (G10): report the first failure there.
        top = failed[0] if failed else OK_STATUS
        return spb.SendMessageResponse(status=top, entries=entries)

    async def _append(
        self, new: list[NewMessage], types: list[int], client_id: str
    ) -> tuple[list[AppendResult], list[str]]:
        engine = self.runtime.delivery
        if len(set(types)) == 1 and len(new) > 1:
            puts = await engine.put_many(new, message_type=MessageType(_ENGINE_TYPES[types[0]]))
        else:
            puts = [
                await engine.put(m, message_type=MessageType(_ENGINE_TYPES[t]),
                                 producer_client_id=client_id)
                for m, t in zip(new, types)
            ]
        return [p.append for p in puts], [p.transaction_id for p in puts]


@functools.lru_cache(maxsize=4096)
def _peer_host(peer: str) -> str:
    address = parse_peer(peer)
    return str(address) if address is not None else ""


def _entry_status(result: AppendResult) -> pb.Status:
    if result.status is AppendStatus.OK:
        return OK_STATUS
    return status(APPEND_CODES[result.status], result.detail or result.status.value)
