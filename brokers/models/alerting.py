"""Alerting: who to tell (:class:`AlertContact`), what to watch (:class:`AlertRule`), where each
watched subject stands (:class:`AlertState`) and what happened (:class:`Alert`).

Tenant rules belong to an instance; platform rules (``instance`` empty, ``scope=platform``)
watch the broker fleet and go to ``settings.MQ_OPERATOR_EMAILS``. The state machine is in
:mod:`brokers.services.alerting`; its life cycle is documented in docs/metrics-and-alerting.md.
"""
from __future__ import annotations

from django.db import models
from django.db.models import Q

__all__ = [
    "PLATFORM_KINDS", "Alert", "AlertContact", "AlertRule", "AlertState", "AlertStatus", "RuleKind", "RuleScope",
]


class AlertContact(models.Model):
    """An e-mail address of an organisation that receives its alerts. With none, alerts go to
    the organisation's owners and admins."""

    ORGANISATION_LOOKUP = "organisation"

    organisation = models.ForeignKey("tenants.Organisation", on_delete=models.CASCADE, related_name="alert_contacts")
    email = models.EmailField()
    name = models.CharField(max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["organisation", "email"], name="uniq_alert_contact")]

    def __str__(self) -> str:
        return self.email


class RuleScope(models.TextChoices):
    INSTANCE = "instance", "Instance (tenant)"
    PLATFORM = "platform", "Platform (operators)"


class RuleKind(models.TextChoices):
    """What a rule compares with its threshold (unit in brackets)."""

    CONSUMER_LAG = "consumer_lag", "Consumer lag above N messages"
    MESSAGE_AGE = "message_age", "Oldest unconsumed message older than M minutes"
    DLQ_MESSAGES = "dlq_messages", "Messages in a dead-letter queue above N"
    SEND_THROTTLED = "send_throttled", "Throttled sends above N per minute"
    STORAGE_QUOTA = "storage_quota", "Storage above x% of the instance quota"
    ORG_STORAGE_BUDGET = "org_storage_budget", "Organisation storage above x% of its budget"
    ORG_SEND_TPS_BUDGET = "org_send_tps_budget", "Organisation send TPS above x% of its budget"
    NODE_DOWN = "node_down", "Node without heartbeat for more than N seconds"
    NODE_DISK = "node_disk", "Node disk above x% used"
    NODE_RESTART_LOOP = "node_restart_loop", "Node restarted more than N times in the last hour"


PLATFORM_KINDS = frozenset({RuleKind.NODE_DOWN, RuleKind.NODE_DISK, RuleKind.NODE_RESTART_LOOP})


class AlertRule(models.Model):
    ORGANISATION_LOOKUP = "instance__organisation"

    scope = models.CharField(max_length=16, choices=RuleScope.choices, default=RuleScope.INSTANCE)
    instance = models.ForeignKey(
        "tenants.Instance", null=True, blank=True, on_delete=models.CASCADE, related_name="alert_rules"
    )
    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=32, choices=RuleKind.choices)
    enabled = models.BooleanField(default=True)
    threshold = models.FloatField(help_text="Compared with '>'; unit depends on the kind.")
    topic = models.CharField(max_length=127, blank=True, help_text="Only this topic (empty: all).")
    group = models.CharField(max_length=127, blank=True, help_text="Only this consumer group (empty: all).")
    duration_seconds = models.PositiveIntegerField(default=300, help_text="Condition must hold this long.")
    cooldown_seconds = models.PositiveIntegerField(default=900, help_text="No re-fire this long after a resolve.")
    reminder_seconds = models.PositiveIntegerField(default=3600, help_text="Re-send while firing; 0: never.")
    recipients = models.JSONField(default=list, blank=True,
                                  help_text="E-mails; empty: the organisation's alert contacts.")
    is_default = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope="instance", instance__isnull=False) | Q(scope="platform", instance__isnull=True),
                name="alert_rule_scope_instance",
            )
        ]

    def __str__(self) -> str:
        return self.name


class AlertStatus(models.TextChoices):
    OK = "ok", "OK"
    PENDING = "pending", "Pending"
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class AlertState(models.Model):
    """Where one (rule, subject) stands: ``ok``, ``pending`` (condition true since
    ``pending_since``) or ``firing`` (``alert`` open). ``cooldown_until`` blocks re-firing."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="states")
    subject = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.OK)
    pending_since = models.DateTimeField(null=True, blank=True)
    cooldown_until = models.DateTimeField(null=True, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    alert = models.ForeignKey("Alert", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["rule", "subject"], name="uniq_alert_state")]


class Alert(models.Model):
    """One firing episode of a rule on a subject, from ``fired_at`` to ``resolved_at``. At most
    one open (``firing``) alert per rule and subject."""

    ORGANISATION_LOOKUP = "instance__organisation"

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    instance = models.ForeignKey("tenants.Instance", null=True, blank=True, on_delete=models.CASCADE,
                                 related_name="alerts")
    subject = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=AlertStatus.choices, default=AlertStatus.FIRING)
    kind = models.CharField(max_length=32, choices=RuleKind.choices)
    threshold = models.FloatField()
    value = models.FloatField(help_text="Value when it fired.")
    peak_value = models.FloatField()
    last_value = models.FloatField()
    fired_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_notified_at = models.DateTimeField()
    reminders_sent = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "subject"], condition=Q(status="firing"),
                                    name="uniq_open_alert")
        ]

    def __str__(self) -> str:
        return f"{self.rule} on {self.subject} ({self.status})"
