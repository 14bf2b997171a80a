"""QueryRoute, QueryAssignment, Heartbeat, NotifyClientTermination (protocol doc §4.1, 4.3, 4.7, 4.13)."""

from __future__ import annotations

from typing import Final

import grpc
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.auth import AuthError
from brokers.node.config import Action, NamespaceSpec, ResourceKind, TopicSpec, TopicType

from .boundary import Call, admit, unary
from .errors import BadRequest
from .runtime import NodeRuntime
from .status import OK_STATUS

_ACCEPT_TYPES: Final = {
    TopicType.NORMAL: (pb.NORMAL,),
    TopicType.FIFO: (pb.FIFO,),
    TopicType.DELAY: (pb.DELAY,),
    TopicType.TRANSACTION: (pb.TRANSACTION,),
    TopicType.MIXED: (pb.NORMAL, pb.FIFO, pb.DELAY, pb.TRANSACTION),
}
DLQ_PREFIX: Final = "%DLQ%"
_CONSUMER_TYPES: Final = frozenset(
    {pb.PUSH_CONSUMER, pb.SIMPLE_CONSUMER, pb.PULL_CONSUMER, pb.LITE_PUSH_CONSUMER,
     pb.LITE_SIMPLE_CONSUMER}
)


def accept_types(topic: TopicSpec) -> tuple[int, ...]:
    return _ACCEPT_TYPES[topic.type]


def broker_endpoints(runtime: NodeRuntime, dialled: pb.Endpoints | None) -> pb.Endpoints:
    """Advertised address (config, then desired state), else echo what the client dialled."""
    node = runtime.state.node
    host = runtime.config.advertised_host or node.advertised_host
    port = runtime.config.advertised_port or node.advertised_port or runtime.config.grpc_port
    if host:
        return pb.Endpoints(scheme=pb.IPv4, addresses=[pb.Address(host=host, port=port)])
    if dialled is not None and dialled.addresses:
        first = dialled.addresses[0]
        scheme = dialled.scheme or pb.IPv4
        return pb.Endpoints(scheme=scheme, addresses=[pb.Address(host=first.host, port=first.port)])
    return pb.Endpoints(
        scheme=pb.IPv4, addresses=[pb.Address(host=runtime.config.listen_host, port=port)]
    )


def require_any(call: Call, kind: ResourceKind, name: str, *actions: Action) -> None:
    """Pass if the ACL grants at least one of ``actions``."""
    last: AuthError | None = None
    for action in actions:
        try:
            call.principal.require(kind, name, action)
            return
        except AuthError as exc:
            last = exc
    assert last is not None
    raise last


def resolve_topic(runtime: NodeRuntime, ns: NamespaceSpec, name: str) -> TopicSpec:
    """A configured topic, or the DLQ of an existing group (``%DLQ%<group>``, one queue)."""
    if not name:
        raise BadRequest("topic name is required", pb.Code.ILLEGAL_TOPIC)
    if name.startswith(DLQ_PREFIX):
        group = runtime.group(ns, name[len(DLQ_PREFIX):])
        return TopicSpec(name=f"{DLQ_PREFIX}{group.name}", type=TopicType.NORMAL, queues=1)
    return runtime.topic(ns, name)


class RouteHandlers:
    runtime: NodeRuntime

    @unary(spb.QueryRouteResponse)
    async def QueryRoute(
        self, request: spb.QueryRouteRequest, context: grpc.aio.ServicerContext
    ) -> spb.QueryRouteResponse:
        call = admit(self.runtime, context, [request.topic.resource_namespace], method="QueryRoute")
        topic = resolve_topic(self.runtime, call.principal.namespace, request.topic.name)
        if topic.name.startswith(DLQ_PREFIX):
            call.principal.require(ResourceKind.GROUP, topic.name[len(DLQ_PREFIX):], Action.SUB)
        else:
            require_any(call, ResourceKind.TOPIC, topic.name, Action.PUB, Action.SUB)
        broker = pb.Broker(
            name=self.runtime.state.node.name, id=0,
            endpoints=broker_endpoints(self.runtime, request.endpoints),
        )
        resource = pb.Resource(resource_namespace=call.namespace, name=topic.name)
        types = accept_types(topic)
        return spb.QueryRouteResponse(
            status=OK_STATUS,
            message_queues=[
                pb.MessageQueue(topic=resource, id=i, permission=pb.READ_WRITE, broker=broker,
                                accept_message_types=types)
                for i in range(topic.queues)
            ],
        )

    @unary(spb.QueryAssignmentResponse)
    async def QueryAssignment(
        self, request: spb.QueryAssignmentRequest, context: grpc.aio.ServicerContext
    ) -> spb.QueryAssignmentResponse:
        call = admit(
            self.runtime, context,
            [request.topic.resource_namespace, request.group.resource_namespace],
            method="QueryAssignment",
        )
        ns = call.principal.namespace
        topic = resolve_topic(self.runtime, ns, request.topic.name)
        group = self.runtime.group(ns, request.group.name)
        call.principal.require(ResourceKind.GROUP, group.name, Action.SUB)
        if not topic.name.startswith(DLQ_PREFIX):
            call.principal.require(ResourceKind.TOPIC, topic.name, Action.SUB)
        broker = pb.Broker(
            name=self.runtime.state.node.name, id=0,
            endpoints=broker_endpoints(self.runtime, request.endpoints),
        )
        resource = pb.Resource(resource_namespace=call.namespace, name=topic.name)
        # Non-FIFO: one "any queue" assignment per broker (id -1) so the PushConsumer runs a
        # single receive loop here; FIFO: one per queue so each queue is consumed in order.
        ids = range(topic.queues) if group.fifo else (-1,)
        return spb.QueryAssignmentResponse(
            status=OK_STATUS,
            assignments=[
                pb.Assignment(message_queue=pb.MessageQueue(
                    topic=resource, id=i, permission=pb.READ_WRITE, broker=broker,
                    accept_message_types=accept_types(topic),
                ))
                for i in ids
            ],
        )

    @unary(spb.HeartbeatResponse)
    async def Heartbeat(
        self, request: spb.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> spb.HeartbeatResponse:
        call = admit(self.runtime, context, [request.group.resource_namespace], method="Heartbeat")
        if request.client_type in _CONSUMER_TYPES:
            group = self.runtime.group(call.principal.namespace, request.group.name)
            call.principal.require(ResourceKind.GROUP, group.name, Action.SUB)
        session = self.runtime.clients.touch(call.client_id, call.namespace, self.runtime.clock())
        if request.client_type:
            session.client_type = request.client_type
        return spb.HeartbeatResponse(status=OK_STATUS)

    @unary(spb.NotifyClientTerminationResponse)
    async def NotifyClientTermination(
        self, request: spb.NotifyClientTerminationRequest, context: grpc.aio.ServicerContext
    ) -> spb.NotifyClientTerminationResponse:
        call = admit(self.runtime, context, [request.group.resource_namespace],
                     method="NotifyClientTermination")
        client_id = call.client_id
        self.runtime.clients.forget(client_id)
        if client_id:
            self.runtime.delivery.release_client(client_id)
        return spb.NotifyClientTerminationResponse(status=OK_STATUS)
