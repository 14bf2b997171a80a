"""Signatures, tenancy and ACLs enforced by a real node, in-band (gRPC status OK)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rocketmq import Message, Producer
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb
from rocketmq.v5.exception import ForbiddenException

from ..conftest import ALL_ACCESS, OTHER_TENANT, READ_ONLY, NodeHandle, RawClient, shifted, sign_headers

AK, SK, NS = ALL_ACCESS


def _route(raw: RawClient, md: list[tuple[str, str]], ns: str = NS,
           topic: str = "orders") -> spb.QueryRouteResponse:
    req = spb.QueryRouteRequest(topic=pb.Resource(resource_namespace=ns, name=topic))
    return raw.stub.QueryRoute(req, metadata=md, timeout=5)


@pytest.mark.parametrize("hours", [-11, -5, 0, 5.5, 8, 13.75])
def test_clients_in_any_time_zone_are_accepted(shared_raw: RawClient, hours: float) -> None:
    md = sign_headers(AK, SK, NS, when=shifted(hours), upper=hours > 6)
    assert _route(shared_raw, md).status.code == pb.Code.OK


def _without_auth() -> list[tuple[str, str]]:
    return [h for h in sign_headers(AK, SK, NS) if h[0] != "authorization"]


# Factories, not values: headers are signed when the test runs. Signed at collection, the
# "stale" one drifts toward a real zone offset while the suite runs and is (rightly) accepted.
@pytest.mark.parametrize("make_md", [
    _without_auth,
    lambda: sign_headers(AK, "forged-secret", NS),
    lambda: sign_headers("UNKNOWN", SK, NS),
    lambda: sign_headers(AK, SK, NS, when=shifted(3 + 7 / 60)),  # no zone is 3h07 away
], ids=["unsigned", "forged", "unknown-ak", "stale"])
def test_bad_signatures_are_unauthorized_in_band(shared_raw: RawClient, shared_node: NodeHandle,
                                                 make_md: Callable[[], list[tuple[str, str]]]) -> None:
    md = make_md()
    resp = _route(shared_raw, md)  # a gRPC error would raise here
    assert resp.status.code == pb.Code.UNAUTHORIZED and not resp.message_queues
    log = shared_node.log_text()
    assert "refused QueryRoute" in log
    assert SK not in log and "Signature=" not in log  # neither secrets nor signatures are logged


def test_client_id_is_required(shared_raw: RawClient) -> None:
    md = [(k, v) for k, v in sign_headers(AK, SK, NS) if k != "x-mq-client-id"]
    assert _route(shared_raw, md).status.code == pb.Code.CLIENT_ID_REQUIRED


def test_credential_never_reaches_another_namespace(shared_raw: RawClient) -> None:
    # ns2's key, addressed at ns1: refused although both tenants have a topic "orders".
    assert _route(shared_raw, sign_headers(*OTHER_TENANT[:2], "ns1"), ns="ns1").status.code \
        == pb.Code.UNAUTHORIZED
    # Header and Resource namespaces disagree.
    assert _route(shared_raw, sign_headers(AK, SK, "ns1"), ns="ns2").status.code \
        == pb.Code.UNAUTHORIZED
    # Namespace only in the header (Node.js style) works.
    assert _route(shared_raw, sign_headers(AK, SK, "ns1"), ns="").status.code == pb.Code.OK


def test_tenants_with_equal_topic_names_are_isolated(node: NodeHandle) -> None:
    for cred in (ALL_ACCESS, OTHER_TENANT):
        p = Producer(node.client_config(*cred), ("orders",))
        p.startup()
        try:
            m = Message()
            m.topic, m.body = "orders", b"tenant " + cred[2].encode()
            p.send(m)
        finally:
            p.shutdown()
    # >= 1: on a loaded machine the SDK may retry a slow send (protocol G17).
    for ns in ("ns1", "ns2"):
        assert node.metric("mq_messages_in_total", namespace=ns, topic="orders") >= 1


def test_acl_without_pub_is_forbidden(shared_node: NodeHandle) -> None:
    p = Producer(shared_node.client_config(*READ_ONLY), ("orders",))
    p.startup()
    try:
        m = Message()
        m.topic, m.body = "orders", b"x"
        with pytest.raises(ForbiddenException, match="pub"):
            p.send(m)
    finally:
        p.shutdown()
    _, text = shared_node.http_get("/metrics")
    assert 'mq_auth_failures_total{namespace="ns1",reason="forbidden"}' in text


def test_unsigned_receive_and_telemetry_get_one_status_frame(shared_raw: RawClient) -> None:
    req = spb.ReceiveMessageRequest(
        group=pb.Resource(resource_namespace=NS, name="g1"),
        message_queue=pb.MessageQueue(topic=pb.Resource(resource_namespace=NS, name="orders")),
        batch_size=1, auto_renew=True,
    )
    frames = list(shared_raw.stub.ReceiveMessage(req, metadata=_without_auth(), timeout=5))
    assert len(frames) == 1 and frames[0].status.code == pb.Code.UNAUTHORIZED
    settings = spb.TelemetryCommand(settings=pb.Settings(client_type=pb.PRODUCER))
    frames = list(shared_raw.stub.Telemetry(iter([settings]), metadata=_without_auth(),
                                            timeout=5))
    assert len(frames) == 1 and frames[0].status.code == pb.Code.UNAUTHORIZED
