"""``apache.rocketmq.v2.MessagingService``, composed from one handler mixin per concern.

PullMessage / UpdateOffset / GetOffset / QueryOffset / SyncLiteSubscription keep the generated
UNIMPLEMENTED behaviour: no official 5.x client path needs them (protocol doc §4.14).

``add_to_server`` registers the servicer like the generated ``add_..._to_server`` does, except
for the methods in ``RAW_RESPONSES``: their handlers produce serialized response bytes
themselves (grpc's serializer is skipped): ReceiveMessage per delivered message, SendMessage
and AckMessage per result entry.
"""

from __future__ import annotations

from typing import Any, Final

import grpc
from rocketmq.grpc_protocol import service_pb2 as spb
from rocketmq.grpc_protocol import service_pb2_grpc

from .consume import ConsumeHandlers
from .route import RouteHandlers
from .runtime import NodeRuntime
from .send import QueueSelector, SendHandlers
from .telemetry import TelemetryHandlers
from .transaction import TransactionHandlers

SERVICE: Final = "apache.rocketmq.v2.MessagingService"
#: Methods whose handlers return/yield already serialized response messages (bytes).
RAW_RESPONSES: Final = frozenset({"AckMessage", "ReceiveMessage", "SendMessage"})


class MessagingServicer(
    RouteHandlers,
    TelemetryHandlers,
    SendHandlers,
    ConsumeHandlers,
    TransactionHandlers,
    service_pb2_grpc.MessagingServiceServicer,
):
    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        self.selector = QueueSelector()


def method_handlers(servicer: MessagingServicer) -> dict[str, grpc.RpcMethodHandler]:
    """One handler per method of the service descriptor (the generated table, built here)."""
    handlers: dict[str, grpc.RpcMethodHandler] = {}
    for method in spb.DESCRIPTOR.services_by_name["MessagingService"].methods:
        request_cls: Any = getattr(spb, method.input_type.name)
        response_cls: Any = getattr(spb, method.output_type.name)
        serializer = None if method.name in RAW_RESPONSES else response_cls.SerializeToString
        factory = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = factory(
            getattr(servicer, method.name),
            request_deserializer=request_cls.FromString,
            response_serializer=serializer,
        )
    return handlers


def add_to_server(servicer: MessagingServicer, server: grpc.aio.Server) -> None:
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, method_handlers(servicer)),)
    )
