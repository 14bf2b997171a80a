"""Client registry: vanished clients are expired, streaming ones are kept."""

from __future__ import annotations

import asyncio

from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.grpc.clients import ClientRegistry


def test_idle_clients_expire_but_streaming_ones_stay() -> None:
    reg = ClientRegistry()
    reg.touch("idle", "ns1", now=100.0)
    streaming = reg.touch("streaming", "ns1", now=100.0)
    outbox: asyncio.Queue[spb.TelemetryCommand | None] = asyncio.Queue()
    streaming.outbox = outbox
    streaming.client_type = pb.PRODUCER
    streaming.topics.add("orders")
    assert reg.expire(now=150.0, idle_s=90) == []
    assert reg.expire(now=191.0, idle_s=90) == ["idle"]
    assert [s.client_id for s in reg.producers_of("ns1", "orders")] == ["streaming"]
    cmd = spb.TelemetryCommand(status=pb.Status(code=pb.Code.OK))
    assert reg.push("streaming", cmd) and outbox.get_nowait() is cmd
    reg.detach_stream("streaming", outbox, now=200.0)
    assert not reg.push("streaming", cmd)
    assert reg.expire(now=289.0, idle_s=90) == [] and reg.expire(now=291.0, idle_s=90) == [
        "streaming"]
