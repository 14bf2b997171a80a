"""Telemetry stream: Settings exchange and server-pushed commands (protocol doc §4.2).

The stream is authenticated once, when it opens. Every Settings frame gets one reply carrying a
complete Settings object for the client's type (publishing limits, backoff policy, subscription
long-polling) with status OK. A refused stream gets exactly one status frame, then ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Final

import grpc
from google.protobuf.duration_pb2 import Duration
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.config import Action, GroupSpec, NamespaceSpec, ResourceKind

from .boundary import Call, admit, translate
from .codec import stored_topic
from .errors import BadRequest, MqError
from .runtime import NodeRuntime
from .status import OK_STATUS

log = logging.getLogger("brokers.node.grpc.telemetry")

LONG_POLLING_TIMEOUT_S: Final = 20
RECEIVE_BATCH_SIZE: Final = 32
DEFAULT_REQUEST_TIMEOUT_S: Final = 3
_PRODUCER_BACKOFF: Final = pb.RetryPolicy(
    max_attempts=3,
    exponential_backoff=pb.ExponentialBackoff(
        initial=Duration(nanos=10_000_000), max=Duration(seconds=1), multiplier=2.0
    ),
)


def _duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(seconds=whole, nanos=int(round((seconds - whole) * 1e9)))


def consumer_backoff(group: GroupSpec) -> pb.RetryPolicy:
    b = group.retry_backoff
    if b.kind == "exponential":
        return pb.RetryPolicy(
            max_attempts=group.max_delivery_attempts,
            exponential_backoff=pb.ExponentialBackoff(
                initial=_duration(b.initial_s), max=_duration(b.max_s), multiplier=b.multiplier
            ),
        )
    return pb.RetryPolicy(
        max_attempts=group.max_delivery_attempts,
        customized_backoff=pb.CustomizedBackoff(next=[_duration(s) for s in b.next_s]),
    )


def reply_settings(runtime: NodeRuntime, ns: NamespaceSpec, client: pb.Settings) -> pb.Settings:
    """The merged Settings for one client: its own values overridden by the server's policy."""
    out = pb.Settings()
    out.CopyFrom(client)
    if not out.HasField("request_timeout") or out.request_timeout.seconds <= 0:
        out.request_timeout.CopyFrom(Duration(seconds=DEFAULT_REQUEST_TIMEOUT_S))
    out.metric.CopyFrom(pb.Metric(on=False))
    if client.HasField("subscription"):
        group = runtime.group(ns, client.subscription.group.name)
        out.backoff_policy.CopyFrom(consumer_backoff(group))
        sub = out.subscription
        sub.fifo = group.fifo
        sub.receive_batch_size = RECEIVE_BATCH_SIZE
        sub.long_polling_timeout.CopyFrom(Duration(seconds=LONG_POLLING_TIMEOUT_S))
    else:
        # Producers (and anything else): always a complete publishing section, or the client's
        # body limit becomes 0 (protocol doc G5).
        out.backoff_policy.CopyFrom(_PRODUCER_BACKOFF)
        out.publishing.max_body_size = ns.quotas.max_message_bytes
        out.publishing.validate_message_type = True
    return out


class TelemetryHandlers:
    runtime: NodeRuntime

    async def Telemetry(
        self,
        request_iterator: AsyncIterator[spb.TelemetryCommand],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[spb.TelemetryCommand]:
        try:
            call = admit(self.runtime, context, [], method="Telemetry")
        except MqError as exc:
            yield spb.TelemetryCommand(status=translate(exc, "Telemetry"))
            return
        outbox: asyncio.Queue[spb.TelemetryCommand | None] = asyncio.Queue()
        session = self.runtime.clients.touch(call.client_id, call.namespace, self.runtime.clock())
        session.outbox = outbox
        reader = asyncio.create_task(self._read(call, request_iterator, outbox))
        try:
            while True:
                command = await outbox.get()
                if command is None:
                    break
                yield command
        finally:
            reader.cancel()
            self.runtime.clients.detach_stream(call.client_id, outbox, self.runtime.clock())

    async def _read(
        self,
        call: Call,
        request_iterator: AsyncIterator[spb.TelemetryCommand],
        outbox: asyncio.Queue[spb.TelemetryCommand | None],
    ) -> None:
        try:
            async for command in request_iterator:
                if command.HasField("settings"):
                    outbox.put_nowait(self._on_settings(call, command.settings))
                # thread_stack_trace / verify_message_result: nothing to do with them.
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        except Exception:  # noqa: BLE001 - a broken stream must not kill the node
            log.exception("[ns=%s] telemetry reader failed", call.namespace)
        finally:
            outbox.put_nowait(None)

    def _on_settings(self, call: Call, settings: pb.Settings) -> spb.TelemetryCommand:
        try:
            reply = self._apply_settings(call, settings)
        except Exception as exc:  # noqa: BLE001 - reported in-band, stream stays open
            return spb.TelemetryCommand(status=translate(exc, "Telemetry"))
        return spb.TelemetryCommand(status=OK_STATUS, settings=reply)

    def _apply_settings(self, call: Call, settings: pb.Settings) -> pb.Settings:
        ns = call.principal.namespace
        session = self.runtime.clients.touch(call.client_id, call.namespace, self.runtime.clock())
        session.client_type = settings.client_type
        if settings.HasField("publishing"):
            for topic in settings.publishing.topics:
                _same_namespace(call, topic.resource_namespace)
                session.topics.add(topic.name)
        if settings.HasField("subscription"):
            sub = settings.subscription
            _same_namespace(call, sub.group.resource_namespace)
            group = self.runtime.group(ns, sub.group.name)
            call.principal.require(ResourceKind.GROUP, group.name, Action.SUB)
            session.group = group.name
            delivery = self.runtime.delivery
            for entry in sub.subscriptions:
                _same_namespace(call, entry.topic.resource_namespace)
                topic = self.runtime.topic(ns, entry.topic.name)
                call.principal.require(ResourceKind.TOPIC, topic.name, Action.SUB)
                delivery.register_consumer(
                    group=self.runtime.consumer_group(ns, group),
                    topic=stored_topic(ns.name, topic.name), client_id=call.client_id,
                )
        return reply_settings(self.runtime, ns, settings)


def _same_namespace(call: Call, resource_ns: str) -> None:
    if resource_ns and resource_ns != call.namespace:
        raise BadRequest(
            f"resource namespace {resource_ns!r} does not match {call.namespace!r}",
            pb.Code.UNAUTHORIZED,
        )
