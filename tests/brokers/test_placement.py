"""Placement: free/standard instances share one cluster, dedicated plans get their own."""
from __future__ import annotations

import pytest

from brokers.models import Cluster, ClusterKind, NodeEvent
from brokers.services import cluster_ensure_node, instance_place, node_authenticate, node_issue_token
from tenants import services as tenant_services
from tenants.models import Instance

pytestmark = pytest.mark.django_db


def _instance(tenant, name: str) -> Instance:
    return tenant_services.instance_create(organisation=tenant.organisation, name=name, actor=tenant_services.SYSTEM)


def test_shared_plans_share_one_cluster(make_tenant) -> None:
    free, standard = make_tenant("tiny", plan="free"), make_tenant("acme", plan="standard")
    a = instance_place(instance=_instance(free, "one"))
    b = instance_place(instance=_instance(standard, "two"))
    assert a.cluster == b.cluster
    assert a.cluster.kind == ClusterKind.SHARED and a.cluster.organisation is None
    # idempotent: placing again keeps the same row
    assert instance_place(instance=a.instance).pk == a.pk


def test_dedicated_plan_gets_its_own_cluster(make_tenant) -> None:
    big, other = make_tenant("bigco", plan="dedicated"), make_tenant("hugeco", plan="dedicated")
    first = instance_place(instance=_instance(big, "one"))
    second = instance_place(instance=_instance(big, "two"))
    third = instance_place(instance=_instance(other, "one"))
    assert first.cluster == second.cluster != third.cluster
    assert first.cluster.kind == ClusterKind.DEDICATED and first.cluster.organisation == big.organisation
    assert Cluster.objects.filter(kind=ClusterKind.SHARED).count() == 0


def test_cluster_gets_one_node_and_tokens_rotate(make_tenant) -> None:
    placement = instance_place(instance=_instance(make_tenant("acme"), "one"))
    node = cluster_ensure_node(cluster=placement.cluster)
    assert cluster_ensure_node(cluster=placement.cluster) == node
    assert NodeEvent.objects.filter(node=node, kind="created").count() == 1
    old = node_issue_token(node=node)
    new = node_issue_token(node=node)
    assert old not in node.token_hash and new not in node.token_hash  # only hashes are stored
    assert node_authenticate(node_id=node.pk, token=new) == node
    assert node_authenticate(node_id=node.pk, token=old) is None
    assert node_authenticate(node_id=node.pk + 1000, token=new) is None
    assert node_authenticate(node_id="x", token=new) is None
