"""The broker-fleet issue's closing journey, past provisioning: a real node's metrics reach the
API, and a consumer-lag alert e-mail arrives at a real SMTP server, then resolves.

sign-up state (tenant fixture: an organisation with an API-token owner) -> instance provisioned
by the (eager) Celery task onto a real node process -> topic, group, credential, ACL via the API
-> the official SDK produces and consumes -> the node agent's metrics land in the metrics API ->
a backlog raises consumer lag -> the lag rule fires an e-mail; consuming resolves it.
"""
from __future__ import annotations

import time
from typing import Any

from django.utils import timezone

from brokers.models import Alert, BrokerNode
from brokers.services.alerting import alerts_evaluate
from tenants.models import Instance
from tests.brokers.test_alerting import Inbox, smtp  # noqa: F401 - fixture
from tests.brokers.test_end_to_end import (  # noqa: F401 - fixture
    Daphne,
    _converged,
    _roundtrip,
    control_plane,
    pytestmark,
)
from tests.conftest import create_instance
from tests.support import wait_until


def _lag(client: Any, instance: Instance) -> int | None:
    groups = client.get(f"/api/v1/instances/{instance.pk}/metrics/summary/").json()["groups"]
    return next((g["lag_messages"] for g in groups if g["group"] == "billing"), None)


def _messages_in(client: Any, instance: Instance) -> int:
    series = client.get(f"/api/v1/instances/{instance.pk}/metrics/?metric=messages_in&topic=orders").json()
    return sum(value for _, value in series["points"])


def _send(endpoint: str, ak: str, sk: str, namespace: str, count: int) -> None:
    from rocketmq import ClientConfiguration, Credentials, Message, Producer

    producer = Producer(ClientConfiguration(endpoint, Credentials(ak, sk), namespace=namespace, request_timeout=5),
                        ("orders",))
    producer.startup()
    try:
        for i in range(count):
            m = Message()
            m.topic, m.body = "orders", f"backlog {i}".encode()
            assert producer.send(m).message_id
    finally:
        producer.shutdown()


def _drain(endpoint: str, ak: str, sk: str, namespace: str, count: int) -> int:
    from rocketmq import ClientConfiguration, Credentials, FilterExpression, SimpleConsumer

    consumer = SimpleConsumer(ClientConfiguration(endpoint, Credentials(ak, sk), namespace=namespace,
                                                  request_timeout=5),
                              "billing", {"orders": FilterExpression()}, await_duration=2)
    consumer.startup()
    got = 0
    try:
        deadline = time.monotonic() + 30
        while got < count and time.monotonic() < deadline:
            for msg in consumer.receive(32, 15):
                consumer.ack(msg)
                got += 1
    finally:
        consumer.shutdown()
    return got


def test_node_metrics_raise_and_resolve_a_lag_alert_by_email(tenant, control_plane: Daphne, smtp: Inbox) -> None:
    c = tenant.owner
    instance = Instance.objects.get(pk=create_instance(c, "prod")["id"])
    assert instance.status == "ready", instance.status_message
    node = BrokerNode.objects.get(cluster=instance.placement.cluster)
    assert c.post("/api/v1/topics/", {"instance": instance.pk, "name": "orders"}, format="json").status_code == 201
    assert c.post("/api/v1/groups/", {"instance": instance.pk, "name": "billing"}, format="json").status_code == 201
    cred = c.post("/api/v1/credentials/", {"instance": instance.pk}, format="json").json()
    ak, sk, ns = cred["access_key"], cred["secret_key"], instance.namespace
    for resource, actions in (("topic", ["pub", "sub"]), ("group", ["sub"])):
        assert c.post("/api/v1/acl-rules/", {"credential": cred["id"], "resource_type": resource, "pattern": "*",
                                             "actions": actions}, format="json").status_code == 201
    rule = c.post("/api/v1/alert-rules/", {"instance": instance.pk, "name": "Billing is behind", "kind": "consumer_lag",
                                           "threshold": 4, "group": "billing", "duration_seconds": 0,
                                           "reminder_seconds": 0}, format="json")
    assert rule.status_code == 201, rule.content
    wait_until(lambda: _converged(node.pk, ns, {"orders"}, ak), 30, "the node to apply topic, credential and ACL")

    # Produce and consume once: the group now has a committed offset the node reports lag against.
    assert b"first" in _roundtrip(instance.endpoint, ak, sk, ns, "orders", b"first")
    wait_until(lambda: _lag(c, instance) == 0, 30, "the node's metrics to report the group")
    wait_until(lambda: _messages_in(c, instance) >= 1, 30, "the sent message to show in the metrics series")

    # A backlog of 10 unconsumed messages: lag above the threshold of 4 -> FIRING e-mail.
    _send(instance.endpoint, ak, sk, ns, 10)
    wait_until(lambda: (_lag(c, instance) or 0) >= 10, 30, "the node's metrics to report the lag")
    assert alerts_evaluate(now=timezone.now())["firing"] >= 1
    wait_until(lambda: len(smtp.messages) >= 1, 15, "the firing e-mail")
    rcpt, mail = smtp.messages[0]
    assert "FIRING" in mail["Subject"] and "Billing is behind" in mail["Subject"]
    assert "owner@acme.example" in rcpt and ns in smtp.bodies()[0]
    alert = Alert.objects.get(rule_id=rule.json()["id"])
    assert alert.status == "firing" and alert.value >= 10
    assert c.get("/api/v1/alerts/").json()["results"][0]["status"] == "firing"

    # The consumer catches up: lag reported back at 0 -> RESOLVED e-mail.
    assert _drain(instance.endpoint, ak, sk, ns, 10) == 10
    wait_until(lambda: _lag(c, instance) == 0, 30, "the node's metrics to report the caught-up group")
    assert alerts_evaluate(now=timezone.now())["resolved"] == 1
    wait_until(lambda: len(smtp.messages) >= 2, 15, "the resolved e-mail")
    assert "RESOLVED" in smtp.messages[1][1]["Subject"]
    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.resolved_at is not None
