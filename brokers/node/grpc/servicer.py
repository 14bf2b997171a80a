"""``apache.rocketmq.v2.MessagingService``, composed from one handler mixin per concern.

PullMessage / UpdateOffset / GetOffset / QueryOffset / SyncLiteSubscription keep the generated
UNIMPLEMENTED behaviour: no official 5.x client path needs them (protocol doc §4.14).
"""

from __future__ import annotations

from rocketmq.grpc_protocol import service_pb2_grpc

from .consume import ConsumeHandlers
from .route import RouteHandlers
from .runtime import NodeRuntime
from .send import QueueSelector, SendHandlers
from .telemetry import TelemetryHandlers
from .transaction import TransactionHandlers


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
