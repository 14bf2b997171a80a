"""bootstrap_platform: plans, the shared cluster and one node on this host, started (eagerly in
tests) by the node start task; running it again changes nothing and starts nothing twice."""
from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from brokers.models import BrokerNode, Cluster
from tenants.models import Plan

pytestmark = pytest.mark.django_db


def test_bootstrap_creates_and_starts_the_local_node_once(settings, node_root, stop_nodes) -> None:
    settings.MQ_HOST_NAME = "here"
    out = StringIO()
    call_command("bootstrap_platform", stdout=out)
    node = BrokerNode.objects.get()
    assert node.cluster == Cluster.objects.get(name="shared-1", kind="shared") and node.host_name == "here"
    assert node.pid and node.status == "starting" and "start queued on host.here" in out.getvalue()
    assert Plan.objects.filter(code__in=["free", "standard", "dedicated"]).count() == 3
    pid = node.pid
    call_command("bootstrap_platform", stdout=StringIO())
    node.refresh_from_db()
    assert BrokerNode.objects.count() == 1 and node.pid == pid
    assert node.events.filter(kind="started").count() == 1
