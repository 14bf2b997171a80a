"""EndTransaction, RecallMessage and orphaned-transaction checks (protocol doc §4.5, 4.6)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import grpc
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.config import Action, ResourceKind, TopicType
from brokers.node.delivery import EndTransactionStatus, RecallStatus, TransactionCheck

from .boundary import admit, unary
from .codec import split_stored_topic, stored_topic, to_delivered_message
from .errors import MqError
from .route import resolve_topic
from .runtime import NodeRuntime
from .status import OK_STATUS

log = logging.getLogger("brokers.node.grpc.transaction")
Code = pb.Code


class TransactionHandlers:
    runtime: NodeRuntime

    @unary(spb.EndTransactionResponse)
    async def EndTransaction(
        self, request: spb.EndTransactionRequest, context: grpc.aio.ServicerContext
    ) -> spb.EndTransactionResponse:
        rt = self.runtime
        call = admit(rt, context, [request.topic.resource_namespace], method="EndTransaction")
        topic = resolve_topic(rt, call.principal.namespace, request.topic.name)
        call.principal.require(ResourceKind.TOPIC, topic.name, Action.PUB)
        if not request.transaction_id.strip():
            raise MqError("transaction_id is required", Code.INVALID_TRANSACTION_ID)
        if request.resolution == pb.TRANSACTION_RESOLUTION_UNSPECIFIED:
            # The checker could not decide: leave the half message pending for the next check.
            return spb.EndTransactionResponse(status=OK_STATUS)
        result = await rt.delivery.end_transaction(
            topic=stored_topic(call.namespace, topic.name),
            transaction_id=request.transaction_id,
            commit=request.resolution == pb.COMMIT,
            from_check=request.source == pb.SOURCE_SERVER_CHECK,
        )
        if result is EndTransactionStatus.UNKNOWN_TRANSACTION:
            raise MqError(f"unknown transaction {request.transaction_id!r}",
                          Code.INVALID_TRANSACTION_ID)
        if result is EndTransactionStatus.STORE_ERROR:
            raise MqError("could not record the transaction outcome", Code.INTERNAL_SERVER_ERROR)
        return spb.EndTransactionResponse(status=OK_STATUS)

    @unary(spb.RecallMessageResponse)
    async def RecallMessage(
        self, request: spb.RecallMessageRequest, context: grpc.aio.ServicerContext
    ) -> spb.RecallMessageResponse:
        """Cancel a delay message that is still waiting (protocol doc §4.6; recall.py)."""
        rt = self.runtime
        call = admit(rt, context, [request.topic.resource_namespace], method="RecallMessage")
        topic = resolve_topic(rt, call.principal.namespace, request.topic.name)
        call.principal.require(ResourceKind.TOPIC, topic.name, Action.PUB)
        if topic.type not in (TopicType.DELAY, TopicType.MIXED):
            raise MqError(f"topic {topic.name!r} is a {topic.type.value} topic; only delay "
                          "messages can be recalled", Code.ILLEGAL_TOPIC)
        result, message_id = await rt.delivery.recall(stored_topic(call.namespace, topic.name),
                                                      request.recall_handle)
        if result is RecallStatus.INVALID_HANDLE:
            raise MqError(f"recall_handle is not one this service issued for topic "
                          f"{topic.name!r}", Code.BAD_REQUEST)
        if result is RecallStatus.NOT_PENDING:
            raise MqError(f"message {message_id} of topic {topic.name!r} is not waiting "
                          "for delivery: it was delivered or recalled already", Code.NOT_FOUND)
        if result is RecallStatus.STORE_ERROR:
            raise MqError("could not record the recall", Code.INTERNAL_SERVER_ERROR)
        log.info("[ns=%s] recalled delay message %s of %s", call.namespace, message_id,
                 topic.name)
        return spb.RecallMessageResponse(status=OK_STATUS, message_id=message_id)


def make_transaction_checker(
    runtime: NodeRuntime,
) -> Callable[[TransactionCheck], Awaitable[bool]]:
    """The callback the delivery engine calls for an orphaned half message: push a
    RecoverOrphanedTransactionCommand to a live producer; False if none is connected."""

    async def check(tc: TransactionCheck) -> bool:
        namespace, bare = split_stored_topic(tc.topic)
        command = spb.TelemetryCommand(
            recover_orphaned_transaction_command=spb.RecoverOrphanedTransactionCommand(
                transaction_id=tc.transaction_id,
                message=to_delivered_message(tc.message, receipt_handle="-", delivery_attempt=1),
            )
        )
        if tc.producer_client_id and runtime.clients.push(tc.producer_client_id, command):
            return True
        for session in runtime.clients.producers_of(namespace, bare):
            if runtime.clients.push(session.client_id, command):
                return True
        log.info("[ns=%s] no producer online to check transaction %s", namespace,
                 tc.transaction_id)
        return False

    return check
