"""LocalProcessDriver (a real node process: idempotent start, stop) and the desired-state
builder (the node's own parser accepts what it builds)."""
from __future__ import annotations

import json
import os
import urllib.request

import pytest

from brokers.drivers.local import LocalProcessDriver, _alive
from brokers.models import BrokerNode, NodeEvent, NodeStatus
from brokers.node.config import parse_desired_state
from brokers.services import cluster_ensure_node, instance_place
from brokers.services.provisioning import node_snapshot
from tenants import services as ts
from tenants.models import InstanceStatus


def _health(node: BrokerNode) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.metrics_port}/healthz", timeout=5) as resp:
        return json.loads(resp.read())


@pytest.mark.django_db
def test_start_is_idempotent_and_stop_terminates(make_tenant, node_root, stop_nodes) -> None:
    inst = ts.instance_create(organisation=make_tenant("acme").organisation, name="one", actor=ts.SYSTEM)
    node = cluster_ensure_node(cluster=instance_place(instance=inst).cluster)
    driver = LocalProcessDriver()
    first = driver.start(node)
    node.refresh_from_db()
    assert first.started and node.pid == first.pid and node.status == NodeStatus.STARTING
    assert node.grpc_port and node.advertised_endpoint == f"127.0.0.1:{node.grpc_port}"
    assert (node_root / node.name / "state.json").exists()
    token_hash = node.token_hash
    again = driver.start(node)  # a retried task: same process, no new token
    node.refresh_from_db()
    assert not again.started and again.pid == first.pid and node.token_hash == token_hash
    cmdline = open(f"/proc/{first.pid}/cmdline", "rb").read()
    assert b"brokers.node" in cmdline and b"MQ_NODE_TOKEN" not in cmdline
    # the node really serves (its metrics port answers)
    import time
    deadline = time.monotonic() + 20
    while True:
        try:
            assert _health(node)["ok"] is True
            break
        except OSError:
            assert time.monotonic() < deadline, (node_root / node.name / "node.log").read_text()[-2000:]
            time.sleep(0.1)
    assert os.getsid(first.pid) == first.pid  # detached in its own session
    # A start interrupted before the pid was recorded (worker stopped mid-wait) leaves a live,
    # unrecorded process: the driver adopts it rather than starting a second node.
    BrokerNode.objects.filter(pk=node.pk).update(pid=None)
    node.refresh_from_db()
    adopted = driver.start(node)
    node.refresh_from_db()
    assert not adopted.started and adopted.pid == first.pid and node.pid == first.pid
    assert driver.stop(node) is True
    node.refresh_from_db()
    assert node.pid is None and not _alive(first.pid, "brokers.node")
    assert driver.stop(node) is False
    assert NodeEvent.objects.filter(node=node, kind="started").count() == 1


@pytest.mark.django_db
def test_snapshot_is_what_the_node_parses(make_tenant) -> None:
    org = make_tenant("acme").organisation
    inst = ts.instance_create(organisation=org, name="one", actor=ts.SYSTEM)
    gone = ts.instance_create(organisation=org, name="two", actor=ts.SYSTEM)
    for i in (inst, gone):
        instance_place(instance=i)
    ts.topic_create(instance=inst, name="orders", actor=ts.SYSTEM, message_type="FIFO", queue_count=4)
    ts.group_create(instance=inst, name="billing", actor=ts.SYSTEM, fifo=True)
    cred, secret = ts.credential_create(instance=inst, actor=ts.SYSTEM)
    _, second = ts.credential_rotate(credential=cred, actor=ts.SYSTEM)
    ts.acl_rule_create(credential=cred, actor=ts.SYSTEM, resource_type="topic", pattern="ord*", actions=["pub"],
                       source_cidrs=["10.0.0.0/8"])
    revoked, _ = ts.credential_create(instance=inst, actor=ts.SYSTEM)
    ts.credential_revoke(credential=revoked, actor=ts.SYSTEM)
    ts.instance_delete(instance=gone, actor=ts.SYSTEM)
    node = cluster_ensure_node(cluster=inst.placement.cluster)

    doc, instance_ids = node_snapshot(node_id=node.pk)
    state = parse_desired_state(json.loads(json.dumps(doc)))
    assert instance_ids == [inst.pk] and set(state.namespaces) == {inst.namespace}
    ns = state.namespaces[inst.namespace]
    assert ns.topics["orders"].type.value == "FIFO" and ns.topics["orders"].queues == 4
    assert ns.groups["billing"].fifo and ns.groups["billing"].retry_backoff.kind == "exponential"
    assert set(ns.credentials) == {cred.access_key}
    assert ns.credentials[cred.access_key].secrets == (secret, second)
    rule = ns.credentials[cred.access_key].acl[0]
    assert rule.pattern == "ord*" and [a.value for a in rule.actions] == ["pub"] and str(rule.cidrs[0]) == "10.0.0.0/8"
    assert ns.quotas.send_tps == inst.send_tps and ns.quotas.storage_bytes == inst.storage_bytes
    # versions only grow
    doc2, _ = node_snapshot(node_id=node.pk)
    assert doc2["version"] == doc["version"] + 1 == BrokerNode.objects.get(pk=node.pk).desired_version
    assert inst.status == InstanceStatus.PROVISIONING


@pytest.mark.django_db(transaction=True)
def test_node_that_cannot_start_fails_the_instance(make_tenant, settings, node_root, stop_nodes) -> None:
    from brokers.tasks import provision_instance_task

    inst = ts.instance_create(organisation=make_tenant("acme").organisation, name="one", actor=ts.SYSTEM)
    node = cluster_ensure_node(cluster=instance_place(instance=inst).cluster)
    (node_root / node.name).mkdir(parents=True)
    (node_root / node.name / "state.json").write_text("{not json")  # the node refuses to start on it
    assert provision_instance_task.delay(inst.pk).get() == "failed"
    inst.refresh_from_db()
    assert inst.status == InstanceStatus.FAILED and "did not start" in inst.status_message
    event = NodeEvent.objects.filter(node=node, kind="failed").get()
    assert inst.namespace in event.detail
    assert BrokerNode.objects.get(pk=node.pk).pid is None
