"""Alerting: rule CRUD, default rules, evaluation (the state machine) and notification.

Life cycle of one (rule, subject) — a subject is what a rule watches: a consumer group, the
instance, the organisation or a node::

    ok --condition true--> pending --held for duration_seconds, outside cool-down--> firing (e-mail)
    pending --condition false--> ok
    firing --still true, reminder_seconds since the last e-mail--> firing (reminder e-mail)
    firing --condition false or no data--> ok, alert resolved (e-mail), cool-down starts

At most one open alert per (rule, subject) (a partial unique constraint holds it). The pure
transition is :func:`advance`; :func:`alerts_evaluate` applies it to every enabled rule with
the measurements of :func:`measure_rule`. The clock is always passed in (``now``).
E-mails are sent after commit by :func:`brokers.alert_tasks.send_alert_email_task`.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from brokers.models.alerting import (
    PLATFORM_KINDS,
    Alert,
    AlertContact,
    AlertRule,
    AlertState,
    AlertStatus,
    RuleKind,
    RuleScope,
)
from brokers.services import metrics as metric_selectors
from tenants.errors import InvalidInput, NotFound
from tenants.models import AuditLog, Instance, InstanceStatus, Membership, Organisation, Role
from tenants.services import Actor

logger = logging.getLogger(__name__)

FIRING: Final = "firing"
REMINDER: Final = "reminder"
RESOLVED: Final = "resolved"

UNITS: Final[dict[str, str]] = {
    RuleKind.CONSUMER_LAG: "messages", RuleKind.MESSAGE_AGE: "minutes", RuleKind.DLQ_MESSAGES: "messages",
    RuleKind.SEND_THROTTLED: "throttled sends per minute", RuleKind.STORAGE_QUOTA: "% of the storage quota",
    RuleKind.ORG_STORAGE_BUDGET: "% of the organisation storage budget",
    RuleKind.ORG_SEND_TPS_BUDGET: "% of the organisation send TPS budget",
    RuleKind.NODE_DOWN: "seconds without heartbeat", RuleKind.NODE_DISK: "% disk used",
    RuleKind.NODE_RESTART_LOOP: "restarts in the last hour",
}

#: Rules every new instance gets (tenants may edit or disable them).
DEFAULT_INSTANCE_RULES: Final[tuple[dict[str, Any], ...]] = (
    dict(kind=RuleKind.CONSUMER_LAG, name="Consumer lag above 10000 messages", threshold=10_000,
         duration_seconds=300),
    dict(kind=RuleKind.MESSAGE_AGE, name="Oldest unconsumed message older than 30 minutes", threshold=30,
         duration_seconds=300),
    dict(kind=RuleKind.DLQ_MESSAGES, name="Messages in a dead-letter queue", threshold=0, duration_seconds=0),
    dict(kind=RuleKind.SEND_THROTTLED, name="Sends throttled (TPS quota reached)", threshold=0,
         duration_seconds=120),
    dict(kind=RuleKind.STORAGE_QUOTA, name="Storage above 80% of the quota", threshold=80, duration_seconds=300),
)
DEFAULT_PLATFORM_RULES: Final[tuple[dict[str, Any], ...]] = (
    dict(kind=RuleKind.NODE_DOWN, name="Broker node down", threshold=60, duration_seconds=0),
    dict(kind=RuleKind.NODE_DISK, name="Broker node disk above 85%", threshold=85, duration_seconds=300),
    dict(kind=RuleKind.NODE_RESTART_LOOP, name="Broker node restart loop", threshold=3, duration_seconds=0),
)


# --- the state machine (pure) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timing:
    duration: timedelta
    cooldown: timedelta
    reminder: timedelta | None

    @classmethod
    def of(cls, rule: AlertRule) -> Timing:
        return cls(timedelta(seconds=rule.duration_seconds), timedelta(seconds=rule.cooldown_seconds),
                   timedelta(seconds=rule.reminder_seconds) if rule.reminder_seconds else None)


@dataclass(frozen=True, slots=True)
class SubjectState:
    status: str = AlertStatus.OK
    pending_since: datetime | None = None
    cooldown_until: datetime | None = None
    last_notified_at: datetime | None = None


def advance(state: SubjectState, *, holds: bool, now: datetime, timing: Timing) -> tuple[SubjectState, str | None]:
    """One evaluation step: the new state and the notification to send (firing, reminder,
    resolved) or None."""
    if state.status == AlertStatus.FIRING:
        if not holds:
            return SubjectState(cooldown_until=now + timing.cooldown), RESOLVED
        if timing.reminder is not None and state.last_notified_at and now - state.last_notified_at >= timing.reminder:
            return replace(state, last_notified_at=now), REMINDER
        return state, None
    if not holds:
        return SubjectState(cooldown_until=state.cooldown_until), None
    since = state.pending_since or now
    cooled = state.cooldown_until is None or now >= state.cooldown_until
    if now - since >= timing.duration and cooled:
        return SubjectState(status=AlertStatus.FIRING, pending_since=since, last_notified_at=now), FIRING
    return SubjectState(status=AlertStatus.PENDING, pending_since=since, cooldown_until=state.cooldown_until), None


# --- measurements ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the platform rules need of one node, as plain values."""

    name: str
    heartbeat_age_seconds: float | None  # None: not expected to heartbeat (stopped, provisioning)
    disk_used_percent: float | None
    restarts_last_hour: int


def measure_nodes(kind: str, nodes: Iterable[NodeFacts]) -> dict[str, float]:
    """Platform rule values per node subject (``node:<name>``)."""
    values: dict[str, float] = {}
    for node in nodes:
        if kind == RuleKind.NODE_DOWN:
            value: float | None = node.heartbeat_age_seconds
        elif kind == RuleKind.NODE_DISK:
            value = node.disk_used_percent
        else:
            value = float(node.restarts_last_hour)
        if value is not None:
            values[f"node:{node.name}"] = value
    return values


def node_facts(*, now: datetime) -> list[NodeFacts]:
    """Facts of every node from the fleet's BrokerNode/NodeEvent rows and the disk metrics."""
    try:
        from brokers.models.fleet import BrokerNode, NodeEvent, NodeEventKind, NodeStatus
    except ImportError:  # fleet not installed: only metric-based facts
        return []
    disk_used = metric_selectors.latest_gauge_by(metric="disk_used_bytes", keys=("node",), now=now,
                                                 freshness=timedelta(minutes=5))
    disk_free = metric_selectors.latest_gauge_by(metric="disk_free_bytes", keys=("node",), now=now,
                                                 freshness=timedelta(minutes=5))
    hour_ago = now - timedelta(hours=1)
    facts = []
    for node in BrokerNode.objects.exclude(status__in=[NodeStatus.STOPPED]).order_by("pk"):
        watched = node.status in (NodeStatus.UP, NodeStatus.DOWN, NodeStatus.FAILED)
        seen = node.last_heartbeat_at or node.started_at
        age = (now - seen).total_seconds() if watched and seen else None
        used, free = disk_used.get((node.name,)), disk_free.get((node.name,))
        pct = 100 * used / (used + free) if used is not None and free is not None and used + free else None
        restarts = NodeEvent.objects.filter(node=node, kind=NodeEventKind.RESTARTED, created_at__gte=hour_ago).count()
        facts.append(NodeFacts(node.name, age, pct, restarts))
    return facts


def _live_instance_ids(organisation_id: int) -> list[int]:
    return list(Instance.objects.filter(organisation_id=organisation_id).exclude(status=InstanceStatus.DELETING)
                .values_list("pk", flat=True))


def measure_rule(rule: AlertRule, *, now: datetime, nodes: list[NodeFacts] | None = None) -> dict[str, float]:
    """The rule's current value per subject (subjects without data are absent)."""
    kind = rule.kind
    if kind in PLATFORM_KINDS:
        return measure_nodes(kind, nodes if nodes is not None else node_facts(now=now))
    instance = rule.instance
    assert instance is not None
    if kind in (RuleKind.CONSUMER_LAG, RuleKind.MESSAGE_AGE, RuleKind.DLQ_MESSAGES):
        metric = {RuleKind.CONSUMER_LAG: "lag_messages", RuleKind.MESSAGE_AGE: "oldest_age_seconds",
                  RuleKind.DLQ_MESSAGES: "dlq_messages"}[RuleKind(kind)]
        per = metric_selectors.latest_gauge_by(metric=metric, keys=("group", "topic"), now=now, instance=instance)
        values: dict[str, float] = {}
        for (group, topic), value in per.items():
            if not group or (rule.group and group != rule.group) or (rule.topic and topic != rule.topic):
                continue
            subject = f"group:{group}"
            if kind == RuleKind.MESSAGE_AGE:
                values[subject] = max(values.get(subject, 0.0), value / 60)
            else:
                values[subject] = values.get(subject, 0.0) + value
        return values
    if kind == RuleKind.SEND_THROTTLED:
        throttled = metric_selectors.counter_last_minute(metric="throttled_send", keys=(), now=now, instance=instance)
        return {"instance": float(throttled.get((), 0))}
    if kind == RuleKind.STORAGE_QUOTA:
        used = metric_selectors.latest_gauge_by(metric="storage_bytes", keys=(), now=now, instance=instance)
        return {"instance": 100 * used[()] / instance.storage_bytes} if () in used and instance.storage_bytes else {}
    organisation = instance.organisation
    ids = _live_instance_ids(organisation.pk)
    if kind == RuleKind.ORG_STORAGE_BUDGET:
        used = metric_selectors.latest_gauge_by(metric="storage_bytes", keys=(), now=now, instance_ids=ids)
        budget = organisation.plan.org_storage_budget_bytes
        return {"organisation": 100 * used.get((), 0) / budget} if budget else {}
    if kind == RuleKind.ORG_SEND_TPS_BUDGET:
        sent = metric_selectors.counter_last_minute(metric="messages_in", keys=(), now=now, instance_ids=ids)
        budget = organisation.plan.org_send_tps_budget
        return {"organisation": 100 * sent.get((), 0) / 60 / budget} if budget else {}
    raise ValueError(f"unknown rule kind {kind!r}")


# --- evaluation ------------------------------------------------------------------------------


def _schedule_email(alert_id: int, event: str) -> None:
    from brokers.alert_tasks import send_alert_email_task

    transaction.on_commit(lambda: send_alert_email_task.delay(alert_id, event))


@transaction.atomic
def alert_rule_evaluate(*, rule: AlertRule, now: datetime, measured: Mapping[str, float]) -> list[tuple[int, str]]:
    """Apply one evaluation of ``rule`` to every subject it measured or has open; returns the
    ``(alert id, event)`` notifications scheduled (sent after commit)."""
    timing = Timing.of(rule)
    states = {s.subject: s for s in AlertState.objects.select_for_update().filter(rule=rule).order_by("pk")}
    events: list[tuple[int, str]] = []
    for subject in sorted(set(measured) | {s for s, st in states.items() if st.status != AlertStatus.OK}):
        value = measured.get(subject)
        holds = value is not None and value > rule.threshold
        row = states.get(subject) or AlertState(rule=rule, subject=subject)
        alert = Alert.objects.filter(pk=row.alert_id).first() if row.alert_id else None
        current = SubjectState(status=row.status, pending_since=row.pending_since, cooldown_until=row.cooldown_until,
                               last_notified_at=alert.last_notified_at if alert else None)
        new, event = advance(current, holds=holds, now=now, timing=timing)
        if event == FIRING:
            assert value is not None
            alert = Alert.objects.create(
                rule=rule, instance=rule.instance, subject=subject, kind=rule.kind, threshold=rule.threshold,
                value=value, peak_value=value, last_value=value, fired_at=now, last_notified_at=now,
            )
        elif alert is not None and value is not None:
            alert.last_value, alert.peak_value = value, max(alert.peak_value, value)
        if alert is not None and event == REMINDER:
            alert.last_notified_at, alert.reminders_sent = now, alert.reminders_sent + 1
        if alert is not None and event == RESOLVED:
            alert.status, alert.resolved_at = AlertStatus.RESOLVED, now
        if alert is not None:
            alert.save()
        row.status, row.pending_since, row.cooldown_until = new.status, new.pending_since, new.cooldown_until
        row.last_value = value
        row.alert = alert if new.status == AlertStatus.FIRING else None
        if row.pk is None and new.status == AlertStatus.OK and new.cooldown_until is None:
            continue  # nothing worth remembering
        row.save()
        if event and alert is not None:
            events.append((alert.pk, event))
            _schedule_email(alert.pk, event)
    return events


def alerts_evaluate(*, now: datetime | None = None) -> dict[str, int]:
    """Evaluate every enabled rule once (one transaction per rule, so one bad rule cannot hold
    back the others). Returns counts of notifications per event."""
    now = now or timezone.now()
    counts = {FIRING: 0, REMINDER: 0, RESOLVED: 0}
    rules = (AlertRule.objects.filter(enabled=True)
             .exclude(instance__status__in=[InstanceStatus.DELETING])
             .select_related("instance", "instance__organisation", "instance__organisation__plan").order_by("pk"))
    nodes: list[NodeFacts] | None = None
    failed: list[int] = []
    for rule in rules:
        try:
            if rule.kind in PLATFORM_KINDS and nodes is None:
                nodes = node_facts(now=now)
            measured = measure_rule(rule, now=now, nodes=nodes)
            for _, event in alert_rule_evaluate(rule=rule, now=now, measured=measured):
                counts[event] += 1
        except Exception:
            logger.exception("evaluating alert rule %s failed", rule.pk)
            failed.append(rule.pk)
    if failed:
        raise RuntimeError(f"alert rules {failed} could not be evaluated (see the log); the others were")
    return counts


# --- notification ----------------------------------------------------------------------------


def alert_recipients(rule: AlertRule) -> list[str]:
    """Explicit recipients of the rule; else the organisation's alert contacts; else its owners
    and admins. Platform rules: ``settings.MQ_OPERATOR_EMAILS``."""
    if rule.scope == RuleScope.PLATFORM:
        return list(rule.recipients or settings.MQ_OPERATOR_EMAILS)
    if rule.recipients:
        return list(rule.recipients)
    assert rule.instance is not None
    organisation_id = rule.instance.organisation_id
    contacts = list(AlertContact.objects.filter(organisation_id=organisation_id).values_list("email", flat=True))
    if contacts:
        return contacts
    return list(Membership.objects.filter(organisation_id=organisation_id, role__in=[Role.OWNER, Role.ADMIN])
                .order_by("pk").values_list("user__email", flat=True))


def alert_notify(*, alert_id: int, event: str) -> int:
    """Send the e-mail of one alert event; returns the number of recipients (0: nobody to tell)."""
    alert = Alert.objects.select_related("rule", "instance", "instance__organisation").get(pk=alert_id)
    recipients = alert_recipients(alert.rule)
    if not recipients:
        logger.warning("alert %s (%s): no recipients", alert.pk, event)
        return 0
    context = {
        "alert": alert, "rule": alert.rule, "event": event, "instance": alert.instance,
        "organisation": alert.instance.organisation if alert.instance else None,
        "unit": UNITS.get(alert.kind, ""), "kind_label": RuleKind(alert.kind).label,
        "value": alert.value if event == FIRING else alert.last_value,
        "console_url": settings.MQ_PUBLIC_URL.rstrip("/") + "/",
    }
    where = alert.instance.name if alert.instance else "platform"
    subject = f"[MQ {event.upper()}] {alert.rule.name} - {where} ({alert.subject})"
    body = render_to_string(f"brokers/emails/alert_{event}.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    return len(recipients)


# --- rules, contacts (CRUD) ------------------------------------------------------------------

_RULE_FIELDS: Final = ("name", "kind", "enabled", "threshold", "topic", "group", "duration_seconds",
                       "cooldown_seconds", "reminder_seconds", "recipients")


def _audit(*, actor: Actor, organisation: Organisation | None, obj: AlertRule | AlertContact, action: str,
           before: dict[str, Any] | None = None, after: dict[str, Any] | None = None) -> None:
    user = actor.user_or_none
    AuditLog.objects.create(
        organisation=organisation, actor=user,
        actor_repr=getattr(user, "email", "") or ("system" if user is None else str(user)),
        object_type="alert_rule" if isinstance(obj, AlertRule) else "alert_contact", object_id=str(obj.pk),
        object_repr=str(obj)[:255], action=action, before=before, after=after, source_ip=actor.source_ip,
    )


def _rule_snapshot(rule: AlertRule) -> dict[str, Any]:
    return {f: getattr(rule, f) for f in _RULE_FIELDS} | {"instance_id": rule.instance_id}


def _check_rule(kind: str, threshold: float) -> None:
    if kind in PLATFORM_KINDS:
        raise InvalidInput("kind", "platform rule kinds are reserved to operators.", reason_code="invalid_choice")
    if threshold < 0:
        raise InvalidInput("threshold", "must be zero or more.", reason_code="min_value")


@transaction.atomic
def alert_rule_create(*, instance: Instance, actor: Actor, **fields: Any) -> AlertRule:
    _check_rule(fields["kind"], fields["threshold"])
    rule = AlertRule.objects.create(instance=instance, scope=RuleScope.INSTANCE, **fields)
    _audit(actor=actor, organisation=instance.organisation, obj=rule, action="create", after=_rule_snapshot(rule))
    return rule


@transaction.atomic
def alert_rule_update(*, rule: AlertRule, actor: Actor, **fields: Any) -> AlertRule:
    before = _rule_snapshot(rule)
    _check_rule(fields.get("kind", rule.kind), fields.get("threshold", rule.threshold))
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.save(update_fields=[*fields, "updated_at"])
    if "enabled" in fields and not rule.enabled:
        # A disabled rule is no longer evaluated: forget its subjects and close its open alerts
        # (quietly: the person who disabled it knows).
        AlertState.objects.filter(rule=rule).delete()
        Alert.objects.filter(rule=rule, status=AlertStatus.FIRING).update(status=AlertStatus.RESOLVED,
                                                                          resolved_at=timezone.now())
    _audit(actor=actor, organisation=rule.instance.organisation if rule.instance else None, obj=rule,
           action="update", before=before, after=_rule_snapshot(rule))
    return rule


@transaction.atomic
def alert_rule_delete(*, rule: AlertRule, actor: Actor) -> None:
    organisation = rule.instance.organisation if rule.instance else None
    _audit(actor=actor, organisation=organisation, obj=rule, action="delete", before=_rule_snapshot(rule))
    rule.delete()


@transaction.atomic
def alert_rules_create_defaults(*, instance: Instance) -> list[AlertRule]:
    """The default rules of an instance (idempotent: none are added if it already has some)."""
    if AlertRule.objects.filter(instance=instance, is_default=True).exists():
        return []
    return [AlertRule.objects.create(instance=instance, scope=RuleScope.INSTANCE, is_default=True, **spec)
            for spec in DEFAULT_INSTANCE_RULES]


@transaction.atomic
def platform_rules_ensure_defaults() -> list[AlertRule]:
    """The operators' node rules, created once (operators' edits are kept)."""
    rules = []
    for spec in DEFAULT_PLATFORM_RULES:
        rule = AlertRule.objects.filter(scope=RuleScope.PLATFORM, kind=spec["kind"], is_default=True).first()
        if rule is None:
            rule = AlertRule.objects.create(scope=RuleScope.PLATFORM, is_default=True, **spec)
        rules.append(rule)
    return rules


@transaction.atomic
def alert_contact_create(*, organisation: Organisation, email: str, name: str = "", actor: Actor) -> AlertContact:
    email = email.strip().lower()
    if AlertContact.objects.filter(organisation=organisation, email=email).exists():
        raise InvalidInput("email", "is already an alert contact.", reason_code="unique")
    contact = AlertContact.objects.create(organisation=organisation, email=email, name=name)
    _audit(actor=actor, organisation=organisation, obj=contact, action="create", after={"email": email})
    return contact


@transaction.atomic
def alert_contact_update(*, contact: AlertContact, actor: Actor, email: str | None = None,
                         name: str | None = None) -> AlertContact:
    """Change a contact's address and/or name (the address stays unique in its organisation)."""
    before = {"email": contact.email, "name": contact.name}
    if email is not None:
        email = email.strip().lower()
        taken = AlertContact.objects.filter(organisation_id=contact.organisation_id, email=email)
        if taken.exclude(pk=contact.pk).exists():
            raise InvalidInput("email", "is already an alert contact.", reason_code="unique")
        contact.email = email
    if name is not None:
        contact.name = name
    after = {"email": contact.email, "name": contact.name}
    if after != before:
        contact.save(update_fields=["email", "name"])
        _audit(actor=actor, organisation=contact.organisation, obj=contact, action="update", before=before,
               after=after)
    return contact


@transaction.atomic
def alert_contact_delete(*, contact: AlertContact, actor: Actor) -> None:
    _audit(actor=actor, organisation=contact.organisation, obj=contact, action="delete",
           before={"email": contact.email})
    contact.delete()


# --- selectors -------------------------------------------------------------------------------


def alerts_of_rule(*, rule: AlertRule) -> QuerySet[Alert]:
    return Alert.objects.filter(rule=rule).order_by("-fired_at", "-pk")


def instance_of_organisation(*, organisation: Organisation, instance_id: int) -> Instance:
    instance = Instance.objects.filter(organisation=organisation, pk=instance_id).first()
    if instance is None:
        raise NotFound("Instance not found.")
    return instance
