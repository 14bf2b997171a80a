"""The admin channel end to end, all real: daphne serving ws/nodes/ and sharing the test
database and Redis channel layer, a node process started by the provisioning task, the official
RocketMQ SDK producing and consuming, and the REST API asking the node through the agent's
websocket: message by id/key/time, a trace showing the ack, group status with lag and the
online consumer, an offset reset by time (dry run, then for real: the consumer receives again),
and a message dead-lettered by the engine resent from the DLQ. Another organisation gets 404.
"""
from __future__ import annotations

import time
from typing import Any

import pytest

from brokers.models import BrokerNode
from tenants.models import AuditLog, Instance
from tests.brokers.test_end_to_end import Daphne, _converged, control_plane  # noqa: F401 - fixture
from tests.conftest import create_instance
from tests.support import needs_shared_services, receive_until, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_shared_services,
]


def test_admin_queries_trace_reset_and_dlq_through_a_real_node(tenant, other_tenant, settings: Any,
                                                               control_plane: Daphne) -> None:  # noqa: F811
    from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer

    settings.MQ_ADMIN_TIMEOUT_S = 20  # a loaded machine; no timing is asserted
    c = tenant.owner
    body = create_instance(c, "prod")
    instance = Instance.objects.select_related("placement__cluster").get(pk=body["id"])
    assert instance.status == "ready", instance.status_message
    node = BrokerNode.objects.get(cluster=instance.placement.cluster)
    assert c.post("/api/v1/topics/", {"instance": instance.pk, "name": "orders"}, format="json").status_code == 201
    r = c.post("/api/v1/groups/", {"instance": instance.pk, "name": "billing", "max_delivery_attempts": 2},
               format="json")
    assert r.status_code == 201, r.content
    cred = c.post("/api/v1/credentials/", {"instance": instance.pk}, format="json").json()
    for resource, actions in (("topic", ["pub", "sub"]), ("group", ["sub"])):
        r = c.post("/api/v1/acl-rules/", {"credential": cred["id"], "resource_type": resource, "pattern": "*",
                                          "actions": actions}, format="json")
        assert r.status_code == 201, r.content
    wait_until(lambda: _converged(node.pk, instance.namespace, {"orders"}, cred["access_key"]), 30,
          "the node to apply topic, credential and ACL")

    cfg = ClientConfiguration(instance.endpoint, Credentials(cred["access_key"], cred["secret_key"]),
                              namespace=instance.namespace, request_timeout=10)
    producer = Producer(cfg, ("orders",))
    producer.startup()
    consumer = SimpleConsumer(cfg, "billing", {"orders": FilterExpression()}, await_duration=3)
    consumer.startup()
    api = f"/api/v1/instances/{instance.pk}"
    try:
        def send(payload: bytes, key: str) -> str:
            m = Message()
            m.topic, m.body, m.tag, m.keys = "orders", payload, "e2e", key
            message_id = producer.send(m).message_id
            assert message_id
            return message_id

        before_ms = int(time.time() * 1000) - 1000
        first = send(b"first", "order-1")

        # -- lookups: by id, by key, by time --------------------------------------------
        got = c.get(f"{api}/messages/?id={first}")
        assert got.status_code == 200, got.content
        msg = got.json()["message"]
        assert msg["msg_id"] == first and msg["body_text"] == "first" and msg["topic"] == "orders"
        assert msg["keys"] == ["order-1"] and msg["tag"] == "e2e"
        # the node's key index is filled in the background: poll until it has the key
        by_key = wait_until(lambda: c.get(f"{api}/messages/?topic=orders&key=order-1").json()["messages"],
                       30, "the key index")
        assert [m["msg_id"] for m in by_key] == [first]
        by_time = c.get(f"{api}/messages/?topic=orders&from={before_ms}&limit=100").json()
        assert first in [m["msg_id"] for m in by_time["messages"]]
        assert c.get(f"{api}/messages/?topic=orders&from={before_ms}&to={before_ms + 1}").json()["messages"] == []

        # -- trace after the consumer acks ----------------------------------------------
        receive_until(consumer, {b"first"})
        trace = c.get(f"{api}/messages/{first}/trace/")
        assert trace.status_code == 200, trace.content
        t = trace.json()
        assert t["stored"]["topic"] == "orders" and t["sent"]["born_timestamp_ms"] > 0
        (delivery,) = t["deliveries"]
        assert delivery["group"] == "billing" and delivery["status"] == "acked"
        assert delivery["acked_by"] == consumer.client_id and delivery["retried"] is False

        # -- group status: lag of an unconsumed message, the online consumer ------------
        second = send(b"second", "order-2")
        status = c.get(f"{api}/groups/billing/status/")
        assert status.status_code == 200, status.content
        s = status.json()
        assert s["lag"] >= 1 and [t["topic"] for t in s["topics"]] == ["orders"]
        assert consumer.client_id in [x["client_id"] for x in s["clients"]]
        assert tenant.clients["viewer"].get(f"{api}/groups/billing/status/").status_code == 200

        # -- reset offset by time: dry run, then for real -------------------------------
        reset_url = f"{api}/groups/billing/reset-offset/"
        receive_until(consumer, {b"second"})
        preview = c.post(reset_url, {"timestamp": before_ms, "dry_run": True}, format="json")
        assert preview.status_code == 200, preview.content
        assert preview.json()["dry_run"] is True and preview.json()["replayed"] == 2
        assert not AuditLog.objects.filter(action="reset_offset").exists()
        assert tenant.clients["member"].post(reset_url, {"timestamp": before_ms}, format="json").status_code == 403
        done = c.post(reset_url, {"timestamp": before_ms}, format="json")
        assert done.status_code == 200 and done.json()["replayed"] == 2
        assert AuditLog.objects.filter(action="reset_offset", object_id=str(instance.pk)).count() == 1
        again = receive_until(consumer, {b"first", b"second"})
        assert {m.message_id for m in again} >= {first, second}

        # -- DLQ: two deliveries without ack -> the engine dead-letters it; resend ------
        poison = send(b"poison", "order-3")
        receive_until(consumer, {b"poison"}, ack=False, invisible_s=1)  # attempt 1
        receive_until(consumer, {b"poison"}, ack=False, invisible_s=1)  # attempt 2, the last

        def in_dlq() -> list[dict[str, Any]]:
            return c.get(f"{api}/groups/billing/dlq/").json()["messages"]

        (dead,) = wait_until(in_dlq, 60, "the message to reach the DLQ")
        assert dead["origin"]["msg_id"] == poison and dead["body_text"] == "poison"
        (delivery,) = c.get(f"{api}/messages/{poison}/trace/").json()["deliveries"]
        assert delivery["status"] == "dead_lettered" and delivery["retried"] is True
        resend_url = f"{api}/groups/billing/dlq/{dead['msg_id']}/resend/"
        assert tenant.clients["member"].post(resend_url).status_code == 403
        resent = c.post(resend_url)
        assert resent.status_code == 200, resent.content
        assert resent.json()["topic"] == "orders"
        back = receive_until(consumer, {b"poison"})
        assert resent.json()["msg_id"] in {m.message_id for m in back}
        assert AuditLog.objects.filter(action="dlq_resend", object_id=str(instance.pk)).count() == 1

        # -- another organisation sees nothing --------------------------------------------
        for url in (f"{api}/messages/?id={first}", f"{api}/messages/{first}/trace/",
                    f"{api}/groups/billing/status/", f"{api}/groups/billing/dlq/"):
            r = other_tenant.owner.get(url)
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", url
        assert other_tenant.owner.post(reset_url, {"timestamp": 0}, format="json").status_code == 404
    finally:
        consumer.shutdown()
        producer.shutdown()
