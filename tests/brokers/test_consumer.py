"""The node websocket (ws/nodes/) through Channels' WebsocketCommunicator and the real ASGI
application: token auth, snapshot on hello, ack -> applied version + instance ready, pushes on
tenant changes through the channel layer, heartbeats, metrics hand-off."""
from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from brokers.models import BrokerNode, MetricPoint, NodeEvent, NodeStatus
from brokers.node.agent.merge_patch import apply, fingerprint
from brokers.node.config import parse_desired_state
from brokers.services import cluster_ensure_node, instance_place, node_issue_token
from mqplatform.asgi import application
from tenants import services as ts
from tenants.models import Instance, InstanceStatus

pytestmark = pytest.mark.django_db(transaction=True)


def _setup(make_tenant) -> tuple[Instance, BrokerNode, str]:
    inst = ts.instance_create(organisation=make_tenant("acme").organisation, name="one", actor=ts.SYSTEM)
    node = cluster_ensure_node(cluster=instance_place(instance=inst).cluster)
    BrokerNode.objects.filter(pk=node.pk).update(advertised_endpoint="127.0.0.1:18081")
    node.refresh_from_db()
    return inst, node, node_issue_token(node=node)


async def _eventually(check, timeout: float = 5.0) -> None:
    """Frames and channel-layer pushes race inside the consumer: poll for the effect."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await database_sync_to_async(check)():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


def _document(frame: dict, base: dict | None) -> dict:
    """The desired state a ``state`` or ``state.patch`` frame carries, as the agent rebuilds it."""
    if frame["type"] == "state":
        return frame["state"]
    assert base is not None and frame["base_version"] == base["version"]
    doc = apply(base, frame["patch"])
    assert fingerprint(doc) == frame["fingerprint"]
    return doc


async def _connect() -> WebsocketCommunicator:
    comm = WebsocketCommunicator(application, "/ws/nodes/")
    connected, _ = await comm.connect()
    assert connected
    return comm


async def test_bad_token_and_missing_hello_are_refused(make_tenant) -> None:
    _, node, token = await database_sync_to_async(_setup)(make_tenant)
    for first in ({"type": "hello", "node_id": node.pk, "token": token + "x"},
                  {"type": "hello", "node_id": node.pk + 99, "token": token},
                  {"type": "heartbeat", "applied_version": 1}):
        comm = await _connect()
        await comm.send_json_to(first)
        assert await comm.receive_json_from() == {"type": "error", "code": "unauthorised"}
        assert (await comm.receive_output())["code"] == 4401
    refreshed = await database_sync_to_async(BrokerNode.objects.get)(pk=node.pk)
    assert refreshed.last_heartbeat_at is None and refreshed.applied_version == 0


async def test_snapshot_ack_push_heartbeat_and_metrics(make_tenant) -> None:
    inst, node, token = await database_sync_to_async(_setup)(make_tenant)

    comm = await _connect()
    await comm.send_json_to({"type": "hello", "node_id": node.pk, "token": token, "applied_version": 0})
    first = await comm.receive_json_from(timeout=5)
    assert first["type"] == "state" and first["version"] == first["state"]["version"] == 1
    assert inst.namespace in parse_desired_state(first["state"]).namespaces

    await comm.send_json_to({"type": "ack", "version": 1})
    await comm.send_json_to({"type": "metrics", "payload": {
        "boot_id": "b1", "node": {"disk_used_bytes": 10, "disk_free_bytes": 90},
        "namespaces": {inst.namespace: {"storage_bytes": 4096}}}})
    await comm.send_json_to({"type": "heartbeat", "applied_version": 1})
    # a tenant change pushes a new version through the channel layer group node.<id>
    await database_sync_to_async(ts.topic_create)(instance=inst, name="orders", actor=ts.SYSTEM)
    pushed = await comm.receive_json_from(timeout=5)
    assert pushed["type"] == "state.patch" and pushed["base_version"] == 1  # only what changed
    assert len(str(pushed["patch"])) < len(str(first["state"]))
    second = _document(pushed, first["state"])
    assert pushed["version"] == second["version"] == 2
    assert "orders" in second["namespaces"][inst.namespace]["topics"]
    assert parse_desired_state(second).namespaces[inst.namespace].topics["orders"]

    stored = MetricPoint.objects.filter(metric="storage_bytes", instance_id=inst.pk)
    await _eventually(lambda: stored.exists() and BrokerNode.objects.get(pk=node.pk).applied_version == 1)
    n = await database_sync_to_async(BrokerNode.objects.get)(pk=node.pk)
    i = await database_sync_to_async(Instance.objects.get)(pk=inst.pk)
    assert n.applied_version == 1 and n.status == NodeStatus.UP and n.last_heartbeat_at is not None
    assert i.status == InstanceStatus.READY and i.endpoint == "127.0.0.1:18081"
    assert await database_sync_to_async(lambda: list(stored.values_list("value", flat=True)))() == [4096]
    assert await database_sync_to_async(
        MetricPoint.objects.filter(metric="disk_free_bytes", node=node.name, instance=None).exists)()
    # acks never move the applied version backwards
    await comm.send_json_to({"type": "ack", "version": 2})
    await comm.send_json_to({"type": "ack", "version": 1})
    await comm.send_json_to({"type": "nack", "version": 7, "error": "bad"})
    await comm.send_json_to({"type": "heartbeat", "applied_version": 2})
    await _eventually(lambda: NodeEvent.objects.filter(node=node, kind="failed").exists())
    await comm.disconnect()
    n = await database_sync_to_async(BrokerNode.objects.get)(pk=node.pk)
    assert n.applied_version == 2
    kinds = await database_sync_to_async(lambda: list(NodeEvent.objects.filter(node=node).values_list("kind", flat=True)))()
    assert {"connected", "up", "failed", "disconnected"} <= set(kinds)


async def test_deleting_an_instance_removes_it_from_the_node_then_the_row(make_tenant, settings) -> None:
    inst, node, token = await database_sync_to_async(_setup)(make_tenant)
    settings.MQ_FLEET_AUTOPROVISION = True
    comm = await _connect()
    await comm.send_json_to({"type": "hello", "node_id": node.pk, "token": token, "applied_version": 0})
    first = await comm.receive_json_from(timeout=5)
    assert inst.namespace in first["state"]["namespaces"]
    await database_sync_to_async(ts.instance_delete)(instance=inst, actor=ts.SYSTEM)
    pushed = await comm.receive_json_from(timeout=5)
    assert pushed["version"] > first["version"]
    assert inst.namespace not in _document(pushed, first["state"])["namespaces"]
    assert not await database_sync_to_async(Instance.objects.filter(pk=inst.pk).exists)()
    await comm.disconnect()


async def test_an_increment_the_node_cannot_apply_is_followed_by_a_full_snapshot(make_tenant) -> None:
    inst, node, token = await database_sync_to_async(_setup)(make_tenant)
    comm = await _connect()
    await comm.send_json_to({"type": "hello", "node_id": node.pk, "token": token, "applied_version": 0})
    first = await comm.receive_json_from(timeout=5)
    await database_sync_to_async(ts.topic_create)(instance=inst, name="orders", actor=ts.SYSTEM)
    patch = await comm.receive_json_from(timeout=5)
    assert patch["type"] == "state.patch"
    # the node says the increment does not fit what it has (e.g. it restarted from an older file)
    await comm.send_json_to({"type": "nack", "version": patch["version"], "error": "based on version 1, "
                             "this node has 0", "resync": True})
    full = await comm.receive_json_from(timeout=5)
    assert full["type"] == "state" and full["version"] > patch["version"] > first["version"]
    assert "orders" in full["state"]["namespaces"][inst.namespace]["topics"]
    # and the next change is again an increment, now against that full document
    await database_sync_to_async(ts.topic_create)(instance=inst, name="audit", actor=ts.SYSTEM)
    nxt = await comm.receive_json_from(timeout=5)
    assert nxt["type"] == "state.patch" and nxt["base_version"] == full["version"]
    assert set(_document(nxt, full["state"])["namespaces"][inst.namespace]["topics"]) == {"orders", "audit"}
    await comm.disconnect()
