"""Operator fleet endpoints: staff only, no token hash, actions run on the node's host queue."""
from __future__ import annotations

import pytest

from brokers.drivers.local import LocalProcessDriver
from brokers.services import cluster_ensure_node, instance_place, node_issue_token
from tenants import services as ts
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


def test_staff_see_clusters_and_nodes_tenants_do_not(tenant, make_user, node_root, stop_nodes) -> None:
    inst = ts.instance_create(organisation=tenant.organisation, name="one", actor=ts.SYSTEM)
    node = cluster_ensure_node(cluster=instance_place(instance=inst).cluster)
    node_issue_token(node=node)
    assert tenant.owner.get("/api/v1/fleet/nodes/").status_code == 403
    staff = token_client(make_user("ops@platform.example", is_staff=True))
    clusters = staff.get("/api/v1/fleet/clusters/").json()["results"]
    assert [(c["name"], c["kind"], c["instances"]) for c in clusters] == [("shared-1", "shared", 1)]
    body = staff.get(f"/api/v1/fleet/nodes/{node.pk}/").json()
    assert body["name"] == node.name and body["status"] == "provisioning"
    assert "token_hash" not in body and node.token_hash not in str(body)
    assert [e["kind"] for e in body["recent_events"]] == ["created"]

    # the task goes to the node's host queue; tests run Celery eagerly, so the local driver
    # really (re)starts the node process before the answer
    response = staff.post(f"/api/v1/fleet/nodes/{node.pk}/restart/")
    assert response.status_code == 202 and response.json() == {"queued": "restart_node_task", "queue": "host.local"}
    node.refresh_from_db()
    assert node.pid and LocalProcessDriver(node_root).is_running(node)
    assert tenant.owner.post(f"/api/v1/fleet/nodes/{node.pk}/restart/").status_code == 403
