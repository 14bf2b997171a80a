"""The broker fleet: clusters, their nodes, where instances live, and what happened to nodes.

A node's raw token is never stored: only its SHA-256 (``token_hash``); the raw value goes to the
node process through its environment when it is (re)started, so every start rotates it.
"""
from __future__ import annotations

from django.db import models

__all__ = [
    "BrokerNode", "Cluster", "ClusterKind", "InstancePlacement", "NodeEvent", "NodeEventKind",
    "NodeRole", "NodeStatus",
]


class ClusterKind(models.TextChoices):
    SHARED = "shared", "Shared"
    DEDICATED = "dedicated", "Dedicated"


class Cluster(models.Model):
    """A set of broker nodes serving the same namespaces. Shared clusters host many
    organisations' instances; a dedicated cluster belongs to one organisation."""

    name = models.SlugField(max_length=64, unique=True)
    kind = models.CharField(max_length=16, choices=ClusterKind.choices)
    organisation = models.ForeignKey(
        "tenants.Organisation", null=True, blank=True, on_delete=models.PROTECT, related_name="clusters"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind="shared", organisation__isnull=True)
                | models.Q(kind="dedicated", organisation__isnull=False),
                name="cluster_dedicated_has_organisation",
            )
        ]

    def __str__(self) -> str:
        return self.name


class NodeRole(models.TextChoices):
    MASTER = "master", "Master"
    SLAVE = "slave", "Slave"


class NodeStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    STARTING = "starting", "Starting"
    UP = "up", "Up"
    DOWN = "down", "Down"
    FAILED = "failed", "Failed"
    STOPPED = "stopped", "Stopped"


class BrokerNode(models.Model):
    """One broker process (``python -m brokers.node``) on one host.

    ``host_name`` names the Celery queue ``host.<host_name>`` whose worker starts and stops it.
    ``desired_version`` is the last state version built for it, ``applied_version`` the last one
    the node acknowledged; both only grow.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="nodes")
    name = models.SlugField(max_length=64, unique=True)
    host_name = models.CharField(max_length=64)
    role = models.CharField(max_length=8, choices=NodeRole.choices, default=NodeRole.MASTER)
    grpc_port = models.PositiveIntegerField(default=0)
    metrics_port = models.PositiveIntegerField(default=0)
    advertised_endpoint = models.CharField(max_length=255, blank=True)
    data_dir = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=NodeStatus.choices, default=NodeStatus.PROVISIONING)
    pid = models.PositiveIntegerField(null=True, blank=True)
    desired_version = models.PositiveBigIntegerField(default=0)
    applied_version = models.PositiveBigIntegerField(default=0)
    token_hash = models.CharField(max_length=64, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    restart_count = models.PositiveIntegerField(default=0, help_text="Automatic restarts since it was last up.")
    next_restart_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    @property
    def queue(self) -> str:
        """The Celery queue of this node's host."""
        return f"host.{self.host_name}"


class InstancePlacement(models.Model):
    """Which cluster serves an instance's namespace."""

    instance = models.OneToOneField("tenants.Instance", on_delete=models.CASCADE, related_name="placement")
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="placements")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.instance_id} on {self.cluster}"


class NodeEventKind(models.TextChoices):
    CREATED = "created", "Created"
    STARTED = "started", "Started"
    CONNECTED = "connected", "Agent connected"
    DISCONNECTED = "disconnected", "Agent disconnected"
    UP = "up", "Up"
    DOWN = "down", "Down"
    RESTARTED = "restarted", "Restarted"
    RECOVERED = "recovered", "Recovered"
    GAVE_UP = "gave_up", "Gave up restarting"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"
    STATE_APPLIED = "state_applied", "Desired state applied"


class NodeEvent(models.Model):
    node = models.ForeignKey(BrokerNode, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=NodeEventKind.choices)
    detail = models.CharField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.node_id} {self.kind}"
