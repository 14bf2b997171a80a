"""Provisioning: place an instance, make sure its cluster has a running node, push the state,
and turn the instance ``ready`` once a node acknowledged a version that contains it.

Readiness is decided where the evidence arrives: the node consumer calls
:func:`instances_mark_ready` with the instances a snapshot contained when the node acks that
snapshot's version. The provisioning task only waits (eager mode) or schedules a deadline.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from brokers.models import BrokerNode, InstancePlacement, NodeEventKind, NodeStatus
from brokers.services.fleet import (
    cluster_ensure_node,
    instance_place,
    node_event,
    node_next_state_version,
)
from brokers.state_builder import build_node_state, served_instances
from tenants import services as tenant_services
from tenants.models import Instance, InstanceStatus

log = logging.getLogger("brokers.provisioning")


def node_group(node_id: int) -> str:
    """Channel-layer group of a node's agent connection(s)."""
    return f"node.{node_id}"


def node_snapshot(*, node_id: int) -> tuple[dict[str, Any], list[int]]:
    """A fresh full desired state for a node (next version) and the instances it contains."""
    version = node_next_state_version(node_id=node_id)
    node = BrokerNode.objects.select_related("cluster").get(pk=node_id)
    return build_node_state(node, version=version), list(served_instances(node).values_list("pk", flat=True))


def nodes_push_state(*, node_ids: Iterable[int]) -> None:
    """Ask the connected agents of these nodes to receive a new snapshot (after commit)."""
    ids = list(node_ids)

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        for node_id in ids:
            async_to_sync(layer.group_send)(node_group(node_id), {"type": "node.push"})

    transaction.on_commit(send)


def instance_push_state(*, instance_id: int) -> None:
    """The desired state of an instance changed: push to the nodes of its cluster."""
    cluster_id = InstancePlacement.objects.filter(instance_id=instance_id).values_list("cluster_id", flat=True).first()
    if cluster_id is not None:
        nodes_push_state(node_ids=BrokerNode.objects.filter(cluster_id=cluster_id).values_list("pk", flat=True))


@transaction.atomic
def instances_mark_ready(*, node_id: int, instance_ids: Iterable[int]) -> list[int]:
    """The node applied a state containing these instances: the provisioning ones become ready
    with the node's endpoint. Returns the ids that changed."""
    node = BrokerNode.objects.get(pk=node_id)
    changed = []
    for instance in Instance.objects.select_for_update().filter(
        pk__in=list(instance_ids), status=InstanceStatus.PROVISIONING, placement__cluster_id=node.cluster_id,
    ).order_by("pk"):
        tenant_services.instance_set_status(
            instance=instance, status=InstanceStatus.READY, endpoint=node.advertised_endpoint,
            message="", actor=tenant_services.SYSTEM,
        )
        changed.append(instance.pk)
    return changed


@transaction.atomic
def instance_provision_fail(*, instance_id: int, reason: str) -> bool:
    instance = Instance.objects.select_for_update().filter(pk=instance_id, status=InstanceStatus.PROVISIONING).first()
    if instance is None:
        return False
    tenant_services.instance_set_status(instance=instance, status=InstanceStatus.FAILED, message=reason[:500],
                                        actor=tenant_services.SYSTEM)
    node = BrokerNode.objects.filter(cluster__placements__instance_id=instance_id).order_by("pk").first()
    if node is not None:
        node_event(node=node, kind=NodeEventKind.FAILED, detail=f"instance {instance.namespace}: {reason}")
    return True


def instance_provision_start(*, instance_id: int) -> BrokerNode | None:
    """Place the instance and make sure a node of its cluster runs (start dispatched to the
    node's host queue). Returns the node, or None when there is nothing to provision."""
    from brokers.tasks import start_node_task

    with transaction.atomic():
        instance = Instance.objects.select_related("organisation__plan").filter(pk=instance_id).first()
        if instance is None or instance.status != InstanceStatus.PROVISIONING:
            return None
        placement = instance_place(instance=instance)
        node = cluster_ensure_node(cluster=placement.cluster)
        nodes_push_state(node_ids=[node.pk])
    if node.status in (NodeStatus.PROVISIONING, NodeStatus.STOPPED) or node.pid is None:
        try:
            start_node_task.apply_async(args=[node.pk], queue=node.queue)
        except Exception as exc:  # inline start (eager) failed: the instance fails, visibly
            log.exception("starting node %s failed", node.name)
            instance_provision_fail(instance_id=instance_id, reason=f"node {node.name} did not start: {exc}"[:500])
            return None
    return node


def instance_status(*, instance_id: int) -> str:
    return Instance.objects.filter(pk=instance_id).values_list("status", flat=True).first() or "gone"


def instance_wait_ready(*, instance_id: int, timeout_s: float) -> str:
    """Poll until the instance left ``provisioning``; on timeout it is marked failed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = Instance.objects.filter(pk=instance_id).values_list("status", flat=True).first()
        if status != InstanceStatus.PROVISIONING:
            return status or "gone"
        time.sleep(0.1)
    instance_provision_fail(instance_id=instance_id, reason=f"no node applied it within {timeout_s:.0f}s")
    return InstanceStatus.FAILED


@transaction.atomic
def instance_remove(*, instance_id: int) -> bool:
    """Tear down a ``deleting`` instance: push the state without it, then delete the row."""
    instance = Instance.objects.select_for_update().filter(pk=instance_id, status=InstanceStatus.DELETING).first()
    if instance is None:
        return False
    cluster_id = InstancePlacement.objects.filter(instance=instance).values_list("cluster_id", flat=True).first()
    instance.delete()
    if cluster_id is not None:
        nodes_push_state(node_ids=BrokerNode.objects.filter(cluster_id=cluster_id).values_list("pk", flat=True))
    return True


def node_start(*, node_id: int) -> int:
    """Start (or find running) the node process on this host; returns its pid."""
    from brokers.drivers import get_driver

    node = BrokerNode.objects.get(pk=node_id)
    return get_driver().start(node).pid


def node_stop(*, node_id: int, grace_s: float = 10.0) -> bool:
    from brokers.drivers import get_driver

    node = BrokerNode.objects.get(pk=node_id)
    stopped = get_driver().stop(node, grace_s=grace_s)
    BrokerNode.objects.filter(pk=node_id).update(status=NodeStatus.STOPPED, updated_at=timezone.now())
    node_event(node=node, kind=NodeEventKind.STOPPED, detail="stopped on request")
    return stopped


def nodes_check_health(*, now: Any = None) -> dict[str, list[int]]:
    """Mark silent nodes down; schedule restarts of down nodes with exponential backoff; give up
    after ``MQ_NODE_RESTART_MAX`` attempts. Returns what it did, by action."""
    from brokers.tasks import restart_node_task

    now = now or timezone.now()
    timeout = timezone.timedelta(seconds=settings.MQ_NODE_HEARTBEAT_TIMEOUT_S)
    done: dict[str, list[int]] = {"down": [], "restarted": [], "gave_up": []}
    for node in BrokerNode.objects.filter(status__in=[NodeStatus.UP, NodeStatus.STARTING]).order_by("pk"):
        seen = node.last_heartbeat_at or node.started_at or node.created_at
        if seen < now - timeout:
            with transaction.atomic():
                # next_restart_at is kept: a node that dies again waits out its backoff
                if BrokerNode.objects.filter(pk=node.pk, status=node.status).update(
                    status=NodeStatus.DOWN, updated_at=now
                ):
                    node_event(node=node, kind=NodeEventKind.DOWN, detail=f"no heartbeat since {seen.isoformat()}")
                    done["down"].append(node.pk)
    for node in BrokerNode.objects.filter(status=NodeStatus.DOWN).order_by("pk"):
        if node.next_restart_at and node.next_restart_at > now:
            continue
        with transaction.atomic():
            locked = BrokerNode.objects.select_for_update().get(pk=node.pk)
            if locked.status != NodeStatus.DOWN:
                continue
            if locked.restart_count >= settings.MQ_NODE_RESTART_MAX:
                locked.status = NodeStatus.FAILED
                locked.save(update_fields=["status", "updated_at"])
                node_event(node=locked, kind=NodeEventKind.GAVE_UP,
                           detail=f"still down after {locked.restart_count} restarts")
                done["gave_up"].append(locked.pk)
                continue
            locked.restart_count += 1
            delay = settings.MQ_NODE_RESTART_BACKOFF_S * 2 ** (locked.restart_count - 1)
            locked.next_restart_at = now + timezone.timedelta(seconds=delay)
            locked.save(update_fields=["restart_count", "next_restart_at", "updated_at"])
            node_event(node=locked, kind=NodeEventKind.RESTARTED,
                       detail=f"restart #{locked.restart_count}; next attempt not before {delay:.0f}s")
            done["restarted"].append(locked.pk)
            queue = locked.queue
            transaction.on_commit(lambda pk=locked.pk, q=queue: restart_node_task.apply_async(args=[pk], queue=q))
    return done


def node_restart(*, node_id: int) -> int:
    """Kill whatever is left of the node and start it again (on its host's worker)."""
    from brokers.drivers import get_driver

    node = BrokerNode.objects.get(pk=node_id)
    driver = get_driver()
    driver.stop(node, grace_s=5.0)
    return driver.start(node).pid


def nodes_stop_on_host(*, host_name: str, reason: str) -> list[int]:
    """Stop every running node process of this host (the platform itself is shutting down).

    Unlike ``node_stop`` (an operator's request, which keeps a node stopped), the nodes are
    marked down: the next start of the platform (``bootstrap_platform``) or the health check
    brings them back. Returns the ids of the nodes that were stopped.
    """
    from brokers.drivers import get_driver

    driver = get_driver()
    stopped: list[int] = []
    for node in BrokerNode.objects.filter(host_name=host_name).order_by("pk"):
        if driver.is_running(node) and driver.stop(node):
            BrokerNode.objects.filter(pk=node.pk).update(status=NodeStatus.DOWN, updated_at=timezone.now())
            node_event(node=node, kind=NodeEventKind.STOPPED, detail=reason)
            stopped.append(node.pk)
    return stopped
