"""Idempotent first-start setup run by the launcher after migrations: default plans and the
local shared cluster with one broker node on this host, so a new user needs no manual step.

The node itself is started by this host's Celery worker (``start_node_task`` on
``host.<MQ_HOST_NAME>``), queued here; a node still running from an earlier start is kept.
"""
from __future__ import annotations

from django.core.management.base import BaseCommand

from brokers.models import NodeStatus
from brokers.services import shared_cluster_ensure_local
from tenants.services import plans_ensure_defaults


class Command(BaseCommand):
    help = "Create the default plans and the local shared broker cluster, and queue its node's start (idempotent)."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--no-start", action="store_true", help="do not queue the node start")

    def handle(self, *args: object, **options: object) -> None:
        from brokers.tasks import start_node_task

        plans = plans_ensure_defaults()
        self.stdout.write(f"plans ready: {', '.join(p.code for p in plans)}")
        cluster, node = shared_cluster_ensure_local()
        self.stdout.write(f"cluster {cluster.name}: node {node.name} on host {node.host_name}")
        if not options.get("no_start") and node.status != NodeStatus.STOPPED:
            start_node_task.apply_async(args=[node.pk], queue=node.queue)
            self.stdout.write(f"node {node.name}: start queued on {node.queue}")
