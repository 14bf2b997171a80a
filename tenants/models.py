"""Tenancy and provisioning data model.

Every tenant-owned row reaches its :class:`Organisation` through a fixed path (see
``ORGANISATION_LOOKUP`` on each model); the API's scoping base filters on that path so no view
can forget it. Business rules live in :mod:`tenants.services`, not here.
"""
from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from tenants.validators import validate_acl_pattern, validate_resource_name, validate_simple_name

GiB = 1024**3
MiB = 1024**2


class Role(models.TextChoices):
    """Membership roles, weakest first (see :data:`ROLE_RANK`)."""

    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"


ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Plan(models.Model):
    """Quotas sold together. Per-instance limits cap each instance; the organisation budgets cap
    the *sum* of the per-instance send TPS and storage quotas over all live instances."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=64)
    self_service = models.BooleanField(default=True, help_text="Owners may switch to it without an operator.")
    max_instances = models.PositiveIntegerField()
    topics_per_instance = models.PositiveIntegerField()
    groups_per_instance = models.PositiveIntegerField()
    credentials_per_instance = models.PositiveIntegerField()
    send_tps = models.PositiveIntegerField(help_text="Per-instance send TPS ceiling.")
    receive_tps = models.PositiveIntegerField(help_text="Per-instance receive TPS ceiling.")
    storage_bytes = models.PositiveBigIntegerField(help_text="Per-instance storage ceiling.")
    retention_hours = models.PositiveIntegerField()
    max_message_bytes = models.PositiveIntegerField()
    dedicated_cluster = models.BooleanField(default=False)
    org_send_tps_budget = models.PositiveIntegerField(help_text="Sum of instance send TPS allowed.")
    org_storage_budget_bytes = models.PositiveBigIntegerField(help_text="Sum of instance storage allowed.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.code


class Organisation(models.Model):
    """The tenant. Users reach it through :class:`Membership`."""

    ORGANISATION_LOOKUP = "pk"

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=64, unique=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="organisations")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    ORGANISATION_LOOKUP = "organisation"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["organisation", "user"], name="uniq_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organisation} as {self.role}"


class Invitation(models.Model):
    """An e-mailed invitation. Only the SHA-256 of the link key is stored."""

    ORGANISATION_LOOKUP = "organisation"

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices)
    key_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"invitation of {self.email} to {self.organisation}"


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; ``prefix`` helps people recognise it."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class InstanceStatus(models.TextChoices):
    PROVISIONING = "provisioning", "Provisioning"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"
    DELETING = "deleting", "Deleting"


class Instance(models.Model):
    """A messaging instance = one RocketMQ resource namespace on the brokers of its cluster.

    The quota fields hold the *effective* per-instance limits: copied from the plan at creation,
    lowerable (never raisable) above the plan by the tenant. Deleting only flips the status to
    ``deleting``; the broker fleet removes the namespace and then the row.
    """

    ORGANISATION_LOOKUP = "organisation"

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="instances")
    name = models.CharField(max_length=64, validators=[validate_simple_name])
    description = models.CharField(max_length=500, blank=True)
    namespace = models.CharField(max_length=64, unique=True, editable=False)
    status = models.CharField(max_length=16, choices=InstanceStatus.choices, default=InstanceStatus.PROVISIONING)
    status_message = models.CharField(max_length=500, blank=True)
    endpoint = models.CharField(max_length=255, blank=True)
    send_tps = models.PositiveIntegerField()
    receive_tps = models.PositiveIntegerField()
    storage_bytes = models.PositiveBigIntegerField()
    retention_hours = models.PositiveIntegerField()
    max_message_bytes = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "name"],
                condition=~Q(status="deleting"),
                name="uniq_live_instance_name",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.namespace})"


class NamespaceReservation(models.Model):
    """Every namespace ever handed out, so one is never reused even after its instance is gone."""

    namespace = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)


class MessageType(models.TextChoices):
    NORMAL = "NORMAL", "Normal"
    FIFO = "FIFO", "FIFO"
    DELAY = "DELAY", "Delay"
    TRANSACTION = "TRANSACTION", "Transaction"


class Topic(models.Model):
    ORGANISATION_LOOKUP = "instance__organisation"

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="topics")
    name = models.CharField(max_length=127, validators=[validate_resource_name])
    message_type = models.CharField(max_length=16, choices=MessageType.choices, default=MessageType.NORMAL)
    queue_count = models.PositiveSmallIntegerField(
        default=8, validators=[MinValueValidator(1), MaxValueValidator(64)]
    )
    retention_hours = models.PositiveIntegerField(help_text="At most the instance's retention.")
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["instance", "name"], name="uniq_topic_per_instance")]

    def __str__(self) -> str:
        return self.name


class DeliveryMode(models.TextChoices):
    CLUSTERING = "clustering", "Clustering"
    BROADCAST = "broadcast", "Broadcast"


class ConsumerGroup(models.Model):
    """A consumer group. Retry backoff is exponential: ``min(initial * multiplier**(n-1), max)``,
    RocketMQ 5's default policy (1 s doubling up to 2 h)."""

    ORGANISATION_LOOKUP = "instance__organisation"

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=127, validators=[validate_resource_name])
    delivery = models.CharField(max_length=16, choices=DeliveryMode.choices, default=DeliveryMode.CLUSTERING)
    fifo = models.BooleanField(default=False)
    max_delivery_attempts = models.PositiveIntegerField(
        default=16, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    retry_initial_backoff_ms = models.PositiveIntegerField(
        default=1000, validators=[MinValueValidator(10), MaxValueValidator(86_400_000)]
    )
    retry_max_backoff_ms = models.PositiveIntegerField(
        default=7_200_000, validators=[MinValueValidator(10), MaxValueValidator(86_400_000)]
    )
    retry_backoff_multiplier = models.FloatField(
        default=2.0, validators=[MinValueValidator(1.0), MaxValueValidator(10.0)]
    )
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["instance", "name"], name="uniq_group_per_instance")]

    def __str__(self) -> str:
        return self.name


class Credential(models.Model):
    """An AccessKey of an instance. Its SecretKeys live in :class:`CredentialSecret` (encrypted)."""

    ORGANISATION_LOOKUP = "instance__organisation"

    instance = models.ForeignKey(Instance, on_delete=models.CASCADE, related_name="credentials")
    access_key = models.CharField(max_length=32, unique=True, editable=False)
    description = models.CharField(max_length=500, blank=True)
    enabled = models.BooleanField(default=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.access_key


class CredentialSecret(models.Model):
    """One SecretKey of a credential, Fernet-encrypted (see :mod:`tenants.crypto`). Up to two are
    active at once so clients can roll over; revoked ones stay for the audit trail."""

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="secrets")
    ciphertext = models.TextField(editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"secret #{self.pk} of {self.credential_id}"


class AclResourceType(models.TextChoices):
    TOPIC = "topic", "Topic"
    GROUP = "group", "Consumer group"


class AclEffect(models.TextChoices):
    ALLOW = "allow", "Allow"
    DENY = "deny", "Deny"


class AclAction(models.TextChoices):
    PUB = "pub", "Publish"
    SUB = "sub", "Subscribe"


class AclRule(models.Model):
    """One ACL rule of a credential; evaluation order is in :mod:`tenants.acl`."""

    ORGANISATION_LOOKUP = "credential__instance__organisation"

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="acl_rules")
    resource_type = models.CharField(max_length=8, choices=AclResourceType.choices)
    pattern = models.CharField(max_length=128, validators=[validate_acl_pattern])
    actions = models.JSONField(default=list)
    effect = models.CharField(max_length=8, choices=AclEffect.choices, default=AclEffect.ALLOW)
    source_cidrs = models.JSONField(default=list, blank=True)
    description = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.effect} {'/'.join(self.actions)} on {self.resource_type} {self.pattern}"


class AuditLog(models.Model):
    """An append-only record of one mutation, written in the same transaction as the change.
    ``before``/``after`` come from explicit field lists that never include secrets."""

    ORGANISATION_LOOKUP = "organisation"

    organisation = models.ForeignKey(
        Organisation, null=True, on_delete=models.SET_NULL, related_name="audit_entries"
    )
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    actor_repr = models.CharField(max_length=254, blank=True)
    object_type = models.CharField(max_length=32, db_index=True)
    object_id = models.CharField(max_length=64)
    object_repr = models.CharField(max_length=255)
    action = models.CharField(max_length=32, db_index=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.object_type}#{self.object_id}"
