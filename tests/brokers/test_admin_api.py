"""The admin channel's control-plane half: the consumer forwards requests from the channel layer
to an authenticated agent and routes answers back to the requester's reply channel; the REST
endpoints are tenant-scoped (another organisation: 404), role-checked, and answer 503/504 when
the node is away. The full path through a real node is in test_admin_e2e.py."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from brokers.models import BrokerNode, NodeStatus
from brokers.services import cluster_ensure_node, instance_place, node_issue_token
from brokers.services.admin import _roundtrip
from mqplatform.asgi import application
from tenants import services as ts
from tenants.models import AuditLog, Instance


def _place(instance: Instance, status: str = NodeStatus.UP) -> BrokerNode:
    node = cluster_ensure_node(cluster=instance_place(instance=instance).cluster)
    BrokerNode.objects.filter(pk=node.pk).update(status=status)
    node.refresh_from_db()
    return node


@pytest.mark.django_db(transaction=True)
async def test_consumer_forwards_requests_only_to_the_authenticated_agent_and_routes_answers(make_tenant) -> None:
    def setup() -> tuple[Instance, BrokerNode, str]:
        inst = ts.instance_create(organisation=make_tenant("acme").organisation, name="one", actor=ts.SYSTEM)
        node = _place(inst)
        return inst, node, node_issue_token(node=node)

    inst, node, token = await database_sync_to_async(setup)()
    agent = WebsocketCommunicator(application, "/ws/nodes/")
    stranger = WebsocketCommunicator(application, "/ws/nodes/")
    assert (await agent.connect())[0] and (await stranger.connect())[0]
    await agent.send_json_to({"type": "hello", "node_id": node.pk, "token": token, "applied_version": 0})
    assert (await agent.receive_json_from(timeout=10))["type"] == "state"

    frame = {"id": "req-1", "op": "message.get", "namespace": inst.namespace, "args": {"msg_id": "ab"}}
    pending = asyncio.ensure_future(_roundtrip(node.pk, frame, 10))
    request = await agent.receive_json_from(timeout=10)
    assert request == {"type": "admin.request", **frame}
    # an unrelated answer id is ignored; the right one reaches the requester
    await agent.send_json_to({"type": "admin.response", "id": "other", "ok": True, "result": {}})
    await agent.send_json_to({"type": "admin.response", "id": "req-1", "ok": False,
                              "error": {"code": "message_not_found", "message": "no"}})
    answer = await asyncio.wait_for(pending, 10)
    assert answer["ok"] is False and answer["error"]["code"] == "message_not_found" and answer["id"] == "req-1"
    assert await stranger.receive_nothing(timeout=0.2)  # never joined the node's group
    await agent.disconnect()
    await stranger.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_roundtrip_times_out_when_nobody_answers(make_tenant) -> None:
    inst = await database_sync_to_async(
        lambda: ts.instance_create(organisation=make_tenant("acme").organisation, name="one", actor=ts.SYSTEM))()
    node = await database_sync_to_async(_place)(inst)
    assert await _roundtrip(node.pk, {"id": "x", "op": "group.status", "namespace": "n", "args": {}}, 0.2) is None


def _urls(instance_id: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"/api/v1/instances/{instance_id}"
    return [
        ("get", f"{base}/messages/?id=abcd", None),
        ("get", f"{base}/messages/abcd/trace/", None),
        ("get", f"{base}/groups/billing/status/", None),
        ("get", f"{base}/groups/billing/dlq/", None),
        ("post", f"{base}/groups/billing/reset-offset/", {"timestamp": 0, "dry_run": True}),
        ("post", f"{base}/groups/billing/dlq/abcd/resend/", None),
    ]


def _call(client: Any, method: str, url: str, body: dict[str, Any] | None) -> Any:
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


@pytest.mark.django_db
def test_another_organisation_gets_404_everywhere(resources: Any, other_tenant: Any) -> None:
    instance_id = resources["instance"]["id"]
    _place(Instance.objects.get(pk=instance_id))
    for method, url, body in _urls(instance_id):
        response = _call(other_tenant.owner, method, url, body)
        assert response.status_code == 404, (url, response.content)
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_roles_and_node_unavailable(resources: Any, tenant: Any) -> None:
    instance_id = resources["instance"]["id"]
    response = tenant.owner.get(f"/api/v1/instances/{instance_id}/groups/billing/status/")
    assert response.status_code == 409 and response.json()["error"]["code"] == "conflict"  # never placed
    _place(Instance.objects.get(pk=instance_id), NodeStatus.DOWN)
    expected = {  # role -> allowed endpoints (by index in _urls)
        "viewer": {2},
        "member": {0, 1, 2, 3},
        "admin": {0, 1, 2, 3, 4, 5},
        "owner": {0, 1, 2, 3, 4, 5},
    }
    for role, allowed in expected.items():
        for i, (method, url, body) in enumerate(_urls(instance_id)):
            response = _call(tenant.clients[role], method, url, body)
            if i in allowed:  # permitted, but the node is down
                assert response.status_code == 503, (role, url, response.content)
                assert response.json()["error"]["code"] == "node_unavailable"
            else:
                assert response.status_code == 403, (role, url, response.content)
                assert response.json()["error"]["code"] == "permission_denied"
    assert not AuditLog.objects.filter(action__in=["reset_offset", "dlq_resend"]).exists()


@pytest.mark.django_db
def test_node_down_is_503_silent_node_is_504_and_unknown_names_404(resources: Any, tenant: Any, settings: Any) -> None:
    instance = Instance.objects.get(pk=resources["instance"]["id"])
    node = _place(instance, NodeStatus.DOWN)
    base = f"/api/v1/instances/{instance.pk}"
    response = tenant.owner.get(f"{base}/groups/billing/status/")
    assert response.status_code == 503 and response.json()["error"]["details"]["node_status"] == "down"

    BrokerNode.objects.filter(pk=node.pk).update(status=NodeStatus.UP)
    settings.MQ_ADMIN_TIMEOUT_S = 0.3
    response = tenant.owner.get(f"{base}/groups/billing/status/")
    assert response.status_code == 504 and response.json()["error"]["code"] == "node_timeout"

    for url in (f"{base}/groups/nope/status/", f"{base}/messages/?topic=nope&key=k"):
        response = tenant.owner.get(url)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found", url


@pytest.mark.django_db
def test_query_validation(resources: Any, tenant: Any) -> None:
    base = f"/api/v1/instances/{resources['instance']['id']}"
    for query in ("", "?topic=orders", "?id=xyz!", "?topic=orders&from=yesterday",
                  "?topic=orders&from=2000&to=1000"):
        response = tenant.owner.get(f"{base}/messages/{query}")
        assert response.status_code == 400, (query, response.content)
        assert response.json()["error"]["code"] == "validation_error"
    response = tenant.owner.post(f"{base}/groups/billing/reset-offset/", {"dry_run": True}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["fields"][0]["field"] == "timestamp"
