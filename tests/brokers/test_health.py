"""check_node_health: silent nodes go down, get restarted on their host's queue with exponential
backoff (real processes), the restart budget ends in gave_up, a heartbeat afterwards recovers."""
from __future__ import annotations

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from brokers.drivers.local import LocalProcessDriver
from brokers.models import BrokerNode, NodeStatus
from brokers.services import cluster_ensure_node, instance_place, node_record_heartbeat
from brokers.services.provisioning import nodes_check_health
from brokers.tasks import check_node_health_task, start_node_task
from tenants import services as ts

pytestmark = pytest.mark.django_db


def _kinds(node: BrokerNode) -> list[str]:
    return list(node.events.order_by("pk").values_list("kind", flat=True))


def test_down_restart_backoff_gave_up_recovered(make_tenant, settings, node_root, stop_nodes,
                                                django_capture_on_commit_callbacks) -> None:
    settings.MQ_NODE_HEARTBEAT_TIMEOUT_S = 10
    settings.MQ_NODE_RESTART_BACKOFF_S = 5
    settings.MQ_NODE_RESTART_MAX = 2
    inst = ts.instance_create(organisation=make_tenant("acme").organisation, name="one", actor=ts.SYSTEM)
    node = cluster_ensure_node(cluster=instance_place(instance=inst).cluster)
    first_pid = start_node_task.delay(node.pk).get()
    os.kill(first_pid, signal.SIGKILL)  # it dies without a word

    t1 = timezone.now() + timedelta(seconds=11)
    with django_capture_on_commit_callbacks(execute=True):
        assert nodes_check_health(now=t1) == {"down": [node.pk], "restarted": [node.pk], "gave_up": []}
    node.refresh_from_db()
    assert node.pid and node.pid != first_pid and LocalProcessDriver().is_running(node)
    assert node.restart_count == 1 and node.next_restart_at == t1 + timedelta(seconds=5)

    # still silent: down again, restarted after the first backoff, the next wait doubles
    t2 = t1 + timedelta(seconds=30)
    with django_capture_on_commit_callbacks(execute=True):
        assert nodes_check_health(now=t2)["restarted"] == [node.pk]
    node.refresh_from_db()
    assert node.restart_count == 2 and node.next_restart_at == t2 + timedelta(seconds=10)
    # (the simulated clock is far ahead of the restarted node's start: it counts as silent again)
    assert nodes_check_health(now=t2 + timedelta(seconds=1)) == {"down": [node.pk], "restarted": [], "gave_up": []}
    # out of restarts: gave_up, failed
    assert nodes_check_health(now=t2 + timedelta(seconds=11))["gave_up"] == [node.pk]
    node.refresh_from_db()
    assert node.status == NodeStatus.FAILED
    # the node does report in after all: recovered, budget reset
    node_record_heartbeat(node_id=node.pk)
    node.refresh_from_db()
    assert node.status == NodeStatus.UP and node.restart_count == 0 and node.next_restart_at is None
    assert _kinds(node) == ["created", "started", "down", "restarted", "started", "down", "restarted", "started",
                            "down", "gave_up", "recovered"]
    # a healthy node is left alone by the beat task
    assert check_node_health_task.delay().get() == {"down": [], "restarted": [], "gave_up": []}
