"""Placement of instances on clusters, nodes and their tokens, heartbeats and events."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from brokers.models import (
    BrokerNode,
    Cluster,
    ClusterKind,
    InstancePlacement,
    NodeEvent,
    NodeEventKind,
    NodeStatus,
)
from tenants.models import Instance

SHARED_CLUSTER_NAME: Final = "shared-1"


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def node_event(*, node: BrokerNode, kind: str, detail: str = "") -> NodeEvent:
    return NodeEvent.objects.create(node=node, kind=kind, detail=detail[:1000])


@transaction.atomic
def instance_place(*, instance: Instance) -> InstancePlacement:
    """Choose (once) the cluster of an instance: plans with ``dedicated_cluster`` get a cluster of
    their organisation's own, every other plan the shared cluster. Idempotent."""
    existing = InstancePlacement.objects.filter(instance=instance).select_related("cluster").first()
    if existing is not None:
        return existing
    plan = instance.organisation.plan
    if plan.dedicated_cluster:
        cluster, _ = Cluster.objects.get_or_create(
            name=f"dedicated-{instance.organisation.slug}"[:64],
            defaults={"kind": ClusterKind.DEDICATED, "organisation": instance.organisation},
        )
    else:
        cluster, _ = Cluster.objects.get_or_create(name=SHARED_CLUSTER_NAME, defaults={"kind": ClusterKind.SHARED})
    return InstancePlacement.objects.create(instance=instance, cluster=cluster)


@transaction.atomic
def node_create(*, cluster: Cluster, name: str, host_name: str | None = None, role: str = "master") -> BrokerNode:
    node = BrokerNode.objects.create(
        cluster=cluster, name=name, host_name=host_name or settings.MQ_HOST_NAME, role=role,
    )
    node_event(node=node, kind=NodeEventKind.CREATED, detail=f"on host {node.host_name}")
    return node


@transaction.atomic
def cluster_ensure_node(*, cluster: Cluster) -> BrokerNode:
    """The cluster's master node, created on this host when the cluster has none yet."""
    Cluster.objects.select_for_update().filter(pk=cluster.pk).first()
    node = cluster.nodes.filter(role="master").order_by("pk").first()
    if node is None:
        node = node_create(cluster=cluster, name=f"{cluster.name}-0"[:64])
    return node


def node_issue_token(*, node: BrokerNode) -> str:
    """A fresh raw token for a (re)start; only its hash is kept. The old one stops working."""
    raw = secrets.token_urlsafe(32)
    node.token_hash = _token_hash(raw)
    node.save(update_fields=["token_hash", "updated_at"])
    return raw


def node_authenticate(*, node_id: object, token: object) -> BrokerNode | None:
    """The node if ``token`` is its current token (constant-time compare), else None."""
    if not isinstance(token, str) or not token:
        return None
    try:
        node = BrokerNode.objects.get(pk=int(node_id))  # type: ignore[arg-type]
    except (BrokerNode.DoesNotExist, TypeError, ValueError):
        _token_hash(token)  # same work either way
        return None
    if not node.token_hash or not hmac.compare_digest(node.token_hash, _token_hash(token)):
        return None
    return node


@transaction.atomic
def node_record_heartbeat(*, node_id: int) -> BrokerNode:
    """A heartbeat: the node is up; a node coming back from down is ``recovered``."""
    node = BrokerNode.objects.select_for_update().get(pk=node_id)
    previous = node.status
    node.last_heartbeat_at = timezone.now()
    fields = ["last_heartbeat_at", "updated_at"]
    if previous != NodeStatus.UP:
        node.status = NodeStatus.UP
        node.next_restart_at = None
        fields += ["status", "restart_count", "next_restart_at"]
        recovering = node.restart_count > 0 or previous in (NodeStatus.DOWN, NodeStatus.FAILED)
        kind = NodeEventKind.RECOVERED if recovering else NodeEventKind.UP
        node_event(node=node, kind=kind, detail=f"was {previous}, {node.restart_count} restart(s)")
        node.restart_count = 0
    node.save(update_fields=fields)
    return node


def node_record_applied(*, node_id: int, version: int) -> int:
    """Store the version the node acknowledged (never moves backwards); returns the stored one."""
    BrokerNode.objects.filter(pk=node_id, applied_version__lt=version).update(
        applied_version=version, updated_at=timezone.now()
    )
    return BrokerNode.objects.values_list("applied_version", flat=True).get(pk=node_id)


@transaction.atomic
def node_next_state_version(*, node_id: int) -> int:
    """Reserve the next desired-state version of a node (monotonic, safe across processes)."""
    BrokerNode.objects.filter(pk=node_id).update(desired_version=F("desired_version") + 1)
    return BrokerNode.objects.values_list("desired_version", flat=True).get(pk=node_id)


@transaction.atomic
def shared_cluster_ensure_local() -> tuple[Cluster, BrokerNode]:
    """The shared cluster with a node on this host (``bootstrap_platform``; idempotent)."""
    cluster, _ = Cluster.objects.get_or_create(name=SHARED_CLUSTER_NAME, defaults={"kind": ClusterKind.SHARED})
    node = cluster.nodes.filter(host_name=settings.MQ_HOST_NAME).order_by("pk").first()
    if node is None:
        node = cluster_ensure_node(cluster=cluster)
    return cluster, node

