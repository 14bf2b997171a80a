"""End to end, all real: a daphne process serving ws/nodes/, the (eager) provisioning task
starting a node process through LocalProcessDriver, the tenants REST API, and the official
RocketMQ Python SDK producing and consuming through the instance endpoint. Then the control
plane goes away (the node keeps serving its last applied state, even across a restart) and
comes back (a topic created
meanwhile converges after the agent reconnects).

A separate daphne process must share the test database and the channel layer, so this needs
PostgreSQL and Redis (DATABASE_URL and REDIS_URL, as in CI).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection

from brokers.models import BrokerNode, NodeEvent
from brokers.tasks import restart_node_task
from tenants.models import Instance
from tests.conftest import create_instance
from tests.node_state import node_has_applied
from tests.support import free_port, needs_shared_services, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    needs_shared_services,
]
REPO = Path(__file__).resolve().parents[2]


class Daphne:
    def __init__(self, port: int, log: Path) -> None:
        self.port, self.log = port, log
        self.process: subprocess.Popen[bytes] | None = None
        db = urlsplit(os.environ["DATABASE_URL"])
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "mqplatform.settings.test",
            "DATABASE_URL": urlunsplit(db._replace(path="/" + connection.settings_dict["NAME"])),
            "MQ_ENCRYPTION_KEYS": ",".join(django_settings.MQ_ENCRYPTION_KEYS),
            "SECRET_KEY": django_settings.SECRET_KEY,
        }

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                 "mqplatform.asgi:application"], cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )

        def listening() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()[-3000:]
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, 30, "daphne to listen")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def control_plane(settings: Any, tmp_path: Path, node_root: Path, stop_nodes: None) -> Iterator[Daphne]:
    port = free_port()
    settings.MQ_CONTROL_PLANE_WS_URL = f"ws://127.0.0.1:{port}/ws/nodes/"
    settings.MQ_FLEET_AUTOPROVISION = True
    settings.MQ_PROVISION_TIMEOUT_S = 30
    daphne = Daphne(port, tmp_path / "daphne.log")
    daphne.start()
    yield daphne
    daphne.stop()


def _converged(node_pk: int, namespace: str, topics: set[str], access_key: str | None = None) -> bool:
    return node_has_applied(BrokerNode.objects.get(pk=node_pk), namespace, topics=topics,
                            access_key=access_key, acl_rules=2 if access_key else 0)


def _roundtrip(endpoint: str, ak: str, sk: str, namespace: str, topic: str, body: bytes) -> list[bytes]:
    from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer

    cfg = ClientConfiguration(endpoint, Credentials(ak, sk), namespace=namespace, request_timeout=5)
    producer = Producer(cfg, (topic,))
    producer.startup()
    try:
        m = Message()
        m.topic, m.body, m.tag = topic, body, "e2e"
        assert producer.send(m).message_id
    finally:
        producer.shutdown()
    consumer = SimpleConsumer(cfg, "billing", {topic: FilterExpression()}, await_duration=3)
    consumer.startup()
    try:
        got: list[bytes] = []
        deadline = time.monotonic() + 20
        while body not in got and time.monotonic() < deadline:
            for msg in consumer.receive(16, 15):
                got.append(msg.body)
                consumer.ack(msg)
        return got
    finally:
        consumer.shutdown()


def test_provision_produce_consume_survive_and_converge(tenant, control_plane: Daphne) -> None:
    c = tenant.owner
    body = create_instance(c, "prod")  # instance_created -> provision task (eager) -> node -> ack -> ready
    instance = Instance.objects.select_related("placement__cluster").get(pk=body["id"])
    assert instance.status == "ready", instance.status_message
    node = BrokerNode.objects.get(cluster=instance.placement.cluster)
    assert instance.endpoint == node.advertised_endpoint and node.status == "up" and node.pid
    assert c.get(f"/api/v1/instances/{instance.pk}/").json()["endpoint"] == instance.endpoint

    assert c.post("/api/v1/topics/", {"instance": instance.pk, "name": "orders"}, format="json").status_code == 201
    assert c.post("/api/v1/groups/", {"instance": instance.pk, "name": "billing"}, format="json").status_code == 201
    cred = c.post("/api/v1/credentials/", {"instance": instance.pk}, format="json").json()
    ak, sk = cred["access_key"], cred["secret_key"]
    for resource, actions in (("topic", ["pub", "sub"]), ("group", ["sub"])):
        r = c.post("/api/v1/acl-rules/", {"credential": cred["id"], "resource_type": resource, "pattern": "*",
                                          "actions": actions}, format="json")
        assert r.status_code == 201, r.content
    wait_until(lambda: _converged(node.pk, instance.namespace, {"orders"}, ak), 20, "the node to apply topic, credential and ACL")
    assert b"hello" in _roundtrip(instance.endpoint, ak, sk, instance.namespace, "orders", b"hello")

    # the control plane goes away: the node keeps serving its last applied state
    control_plane.stop()
    assert b"still-here" in _roundtrip(instance.endpoint, ak, sk, instance.namespace, "orders", b"still-here")
    # ... also after a restart: the last applied state was persisted in the node's directory
    old_pid = node.pid
    restart_node_task.delay(node.pk).get()
    node.refresh_from_db()
    assert node.pid != old_pid
    assert b"restarted" in _roundtrip(instance.endpoint, ak, sk, instance.namespace, "orders", b"restarted")
    # a topic created meanwhile reaches the node once the agent is back
    assert c.post("/api/v1/topics/", {"instance": instance.pk, "name": "late"}, format="json").status_code == 201
    control_plane.start()
    wait_until(lambda: _converged(node.pk, instance.namespace, {"orders", "late"}), 30, "the node to converge")
    assert b"late-one" in _roundtrip(instance.endpoint, ak, sk, instance.namespace, "late", b"late-one")
    assert NodeEvent.objects.filter(node=node, kind="connected").count() >= 2
