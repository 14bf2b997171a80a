"""QueryRoute, Heartbeat, Telemetry Settings and NotifyClientTermination, checked on the wire."""

from __future__ import annotations

import queue

import pytest
from rocketmq import Message, Producer
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from ..conftest import ALL_ACCESS, NodeHandle, RawClient, sign_headers



def _route(raw: RawClient, topic: str, node: NodeHandle, ns: str = "ns1") -> spb.QueryRouteResponse:
    req = spb.QueryRouteRequest(
        topic=pb.Resource(resource_namespace=ns, name=topic),
        endpoints=pb.Endpoints(scheme=pb.IPv4,
                               addresses=[pb.Address(host="127.0.0.1", port=node.grpc_port)]),
    )
    return raw.stub.QueryRoute(req, metadata=sign_headers(*ALL_ACCESS), timeout=5)


@pytest.mark.parametrize("topic, types", [
    ("orders", [pb.NORMAL]), ("fifo-orders", [pb.FIFO]), ("delayed", [pb.DELAY]),
    ("txn", [pb.TRANSACTION]),
])
def test_route_lists_queues_at_this_node(shared_raw: RawClient, shared_node: NodeHandle, topic: str,
                                         types: list[int]) -> None:
    resp = _route(shared_raw, topic, shared_node)
    assert resp.status.code == pb.Code.OK
    expected = 4 if topic in ("orders", "fifo-orders") else 2
    assert [q.id for q in resp.message_queues] == list(range(expected))
    for q in resp.message_queues:
        assert q.permission == pb.READ_WRITE and list(q.accept_message_types) == types
        assert q.topic == pb.Resource(resource_namespace="ns1", name=topic)
        assert q.broker.id == 0 and q.broker.endpoints.scheme == pb.IPv4
        assert q.broker.endpoints.addresses[0].port == shared_node.grpc_port


def test_unknown_topic_and_group(shared_raw: RawClient, shared_node: NodeHandle) -> None:
    resp = _route(shared_raw, "nope", shared_node)
    assert resp.status.code == pb.Code.TOPIC_NOT_FOUND and "nope" in resp.status.message
    hb = shared_raw.stub.Heartbeat(
        spb.HeartbeatRequest(client_type=pb.SIMPLE_CONSUMER,
                             group=pb.Resource(resource_namespace="ns1", name="ghost")),
        metadata=sign_headers(*ALL_ACCESS), timeout=5)
    assert hb.status.code == pb.Code.CONSUMER_GROUP_NOT_FOUND and "ghost" in hb.status.message
    ok = shared_raw.stub.Heartbeat(spb.HeartbeatRequest(client_type=pb.PRODUCER), metadata=sign_headers(*ALL_ACCESS),
                                   timeout=5)
    assert ok.status.code == pb.Code.OK
    bye = shared_raw.stub.NotifyClientTermination(spb.NotifyClientTerminationRequest(),
                                                  metadata=sign_headers(*ALL_ACCESS), timeout=5)
    assert bye.status.code == pb.Code.OK


def test_sdk_send_to_unknown_topic_fails_fast(shared_node: NodeHandle) -> None:
    p = Producer(shared_node.client_config(*ALL_ACCESS))
    p.startup()
    try:
        m = Message()
        m.topic, m.body = "nope", b"x"
        # The SDK wraps the route failure in a plain Exception naming the topic.
        with pytest.raises(Exception, match="nope"):
            p.send(m)
    finally:
        p.shutdown()


def _settings_reply(raw: RawClient, settings: pb.Settings) -> spb.TelemetryCommand:
    requests: queue.Queue[spb.TelemetryCommand | None] = queue.Queue()
    requests.put(spb.TelemetryCommand(settings=settings))

    def gen():  # type: ignore[no-untyped-def]
        while (item := requests.get()) is not None:
            yield item

    call = raw.stub.Telemetry(gen(), metadata=sign_headers(*ALL_ACCESS), timeout=10)
    reply = next(iter(call))
    requests.put(None)
    call.cancel()
    return reply


def test_producer_settings_reply_is_complete(shared_raw: RawClient) -> None:
    reply = _settings_reply(shared_raw, pb.Settings(
        client_type=pb.PRODUCER,
        publishing=pb.Publishing(topics=[pb.Resource(resource_namespace="ns1", name="orders")],
                                 max_body_size=128 * 1024 * 1024, validate_message_type=True),
    ))
    assert reply.status.code == pb.Code.OK
    s = reply.settings
    assert s.publishing.max_body_size == 4 * 1024 * 1024  # the namespace's limit, not 128 MiB
    assert s.publishing.validate_message_type
    assert s.backoff_policy.HasField("exponential_backoff") and s.backoff_policy.max_attempts == 3
    assert s.request_timeout.seconds == 3


def test_push_consumer_settings_reply(shared_raw: RawClient) -> None:
    reply = _settings_reply(shared_raw, pb.Settings(
        client_type=pb.PUSH_CONSUMER,
        subscription=pb.Subscription(
            group=pb.Resource(resource_namespace="ns1", name="g-fifo"),
            subscriptions=[pb.SubscriptionEntry(
                topic=pb.Resource(resource_namespace="ns1", name="fifo-orders"),
                expression=pb.FilterExpression(type=pb.TAG, expression="*"))],
        ),
    ))
    assert reply.status.code == pb.Code.OK
    sub = reply.settings.subscription
    assert sub.fifo and sub.receive_batch_size == 32 and sub.long_polling_timeout.seconds == 20
    backoff = reply.settings.backoff_policy
    assert backoff.max_attempts == 16 and backoff.customized_backoff.next[0].seconds == 1


def test_settings_for_unknown_group_is_refused_in_band(shared_raw: RawClient) -> None:
    reply = _settings_reply(shared_raw, pb.Settings(
        client_type=pb.SIMPLE_CONSUMER,
        subscription=pb.Subscription(group=pb.Resource(resource_namespace="ns1", name="ghost")),
    ))
    assert reply.status.code == pb.Code.CONSUMER_GROUP_NOT_FOUND
