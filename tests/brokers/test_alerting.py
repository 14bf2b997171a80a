"""Alert state machine with a fake clock (pending -> firing -> reminder -> resolved -> cool-down),
e-mails arriving at a real SMTP server on loopback, default rules, organisation budgets and
platform (node) rules."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from brokers.metrics_ingest import ingest
from brokers.models import Alert, AlertContact, AlertRule, AlertState
from brokers.services import alerting
from brokers.services.alerting import (
    FIRING,
    RESOLVED,
    REMINDER,
    NodeFacts,
    SubjectState,
    Timing,
    advance,
    alert_rule_evaluate,
    alerts_evaluate,
    measure_nodes,
)
from tenants import services as tenant_services
from tenants.models import GiB, Instance
from tests.smtp import Inbox

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 10, 0, 10, tzinfo=UTC)


@pytest.fixture
def smtp(smtp: Inbox, settings: Any) -> Inbox:
    """The suite's SMTP server on loopback (tests/conftest.py), with platform operators set."""
    settings.MQ_OPERATOR_EMAILS = ["ops@platform.example"]
    return smtp


@pytest.fixture
def instance(tenant) -> Instance:
    return tenant_services.instance_create(organisation=tenant.organisation, name="prod", actor=tenant_services.SYSTEM)


def lag_report(ns: str, lag: int, *, age: int = 0, storage: int | None = None, sent: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"groups": {"billing": {"topics": {"orders": {"lag_messages": lag, "oldest_age_seconds": age}}}}}
    if storage is not None:
        body["storage_bytes"] = storage
    if sent is not None:
        body["topics"] = {"orders": {"messages_in": sent}}
    return {"boot_id": "b1", "namespaces": {ns: body}}


# --- the pure transition ---------------------------------------------------------------------


def test_advance_pending_firing_reminder_resolved_cooldown() -> None:
    timing = Timing(duration=timedelta(minutes=2), cooldown=timedelta(minutes=10), reminder=timedelta(minutes=30))
    s, event = advance(SubjectState(), holds=True, now=T0, timing=timing)
    assert (s.status, s.pending_since, event) == ("pending", T0, None)
    s, event = advance(s, holds=True, now=T0 + timedelta(minutes=1), timing=timing)
    assert (s.status, event) == ("pending", None)
    s, event = advance(s, holds=True, now=T0 + timedelta(minutes=2), timing=timing)
    assert (s.status, event) == ("firing", FIRING)
    s, event = advance(s, holds=True, now=T0 + timedelta(minutes=31), timing=timing)
    assert event is None  # 29 minutes since the e-mail
    s, event = advance(s, holds=True, now=T0 + timedelta(minutes=32), timing=timing)
    assert (s.status, event, s.last_notified_at) == ("firing", REMINDER, T0 + timedelta(minutes=32))
    s, event = advance(s, holds=False, now=T0 + timedelta(minutes=40), timing=timing)
    assert (s.status, event, s.cooldown_until) == ("ok", RESOLVED, T0 + timedelta(minutes=50))
    # true again during the cool-down: pending, but never firing before it ends
    s, event = advance(s, holds=True, now=T0 + timedelta(minutes=41), timing=timing)
    s, event = advance(s, holds=True, now=T0 + timedelta(minutes=49), timing=timing)
    assert (s.status, event) == ("pending", None)
    s, event = advance(s, holds=True, now=T0 + timedelta(minutes=50), timing=timing)
    assert (s.status, event) == ("firing", FIRING)
    # a blip shorter than the duration never fires
    s, event = advance(SubjectState(), holds=True, now=T0, timing=timing)
    s, event = advance(s, holds=False, now=T0 + timedelta(minutes=1), timing=timing)
    assert (s.status, s.pending_since, event) == ("ok", None, None)


# --- evaluation against stored metrics, e-mails through SMTP ---------------------------------


def evaluate(capture: Any, now: datetime) -> dict[str, int]:
    with capture(execute=True):
        return alerts_evaluate(now=now)


def test_lag_rule_lifecycle_with_emails(tenant, instance, smtp, django_capture_on_commit_callbacks) -> None:
    rule = AlertRule.objects.create(instance=instance, name="Billing is behind", kind="consumer_lag",
                                    threshold=100, duration_seconds=120, cooldown_seconds=900, reminder_seconds=600)
    ns = instance.namespace
    at = lambda seconds: T0 + timedelta(seconds=seconds)  # noqa: E731

    ingest("node-a", lag_report(ns, 500), now=at(0))
    assert evaluate(django_capture_on_commit_callbacks, at(0)) == {FIRING: 0, REMINDER: 0, RESOLVED: 0}
    assert AlertState.objects.get(rule=rule).status == "pending"
    ingest("node-a", lag_report(ns, 700), now=at(60))
    evaluate(django_capture_on_commit_callbacks, at(60))
    assert smtp.messages == [] and not Alert.objects.exists()

    ingest("node-a", lag_report(ns, 800), now=at(125))
    assert evaluate(django_capture_on_commit_callbacks, at(125))[FIRING] == 1
    alert = Alert.objects.get()
    assert (alert.status, alert.subject, alert.value, alert.fired_at) == ("firing", "group:billing", 800, at(125))
    [(rcpt, mail)] = smtp.messages
    assert sorted(rcpt) == ["admin@acme.example", "owner@acme.example"]  # no contacts: owners and admins
    assert "FIRING" in mail["Subject"] and "Billing is behind" in mail["Subject"] and "prod" in mail["Subject"]
    body = smtp.bodies()[0]
    assert "prod" in body and ns in body and "Billing is behind" in body and "800" in body and "100" in body

    # deduplicated: still true, no new alert and no mail before the reminder interval
    ingest("node-a", lag_report(ns, 900), now=at(300))
    evaluate(django_capture_on_commit_callbacks, at(300))
    assert Alert.objects.count() == 1 and len(smtp.messages) == 1

    ingest("node-a", lag_report(ns, 1200), now=at(730))
    assert evaluate(django_capture_on_commit_callbacks, at(730))[REMINDER] == 1
    assert len(smtp.messages) == 2 and "REMINDER" in smtp.messages[1][1]["Subject"]
    assert "1200" in smtp.bodies()[1]

    ingest("node-a", lag_report(ns, 3), now=at(800))
    assert evaluate(django_capture_on_commit_callbacks, at(800))[RESOLVED] == 1
    alert.refresh_from_db()
    assert (alert.status, alert.resolved_at, alert.peak_value, alert.reminders_sent) == ("resolved", at(800), 1200, 1)
    resolved_subject, resolved_body = smtp.messages[2][1]["Subject"], smtp.bodies()[2]
    assert "RESOLVED" in resolved_subject and "Billing is behind" in resolved_body and "prod" in resolved_body

    # back above the threshold inside the cool-down (900 s): no new alert even after the duration
    for t in (860, 1000, 1600):
        ingest("node-a", lag_report(ns, 5000), now=at(t))
        evaluate(django_capture_on_commit_callbacks, at(t))
    assert Alert.objects.count() == 1 and len(smtp.messages) == 3
    ingest("node-a", lag_report(ns, 5000), now=at(1710))
    assert evaluate(django_capture_on_commit_callbacks, at(1710))[FIRING] == 1
    assert Alert.objects.filter(status="firing").count() == 1 and len(smtp.messages) == 4


def test_contacts_receive_alerts_and_missing_data_resolves(tenant, instance, smtp,
                                                          django_capture_on_commit_callbacks) -> None:
    AlertContact.objects.create(organisation=tenant.organisation, email="oncall@acme.example")
    AlertRule.objects.create(instance=instance, name="DLQ not empty", kind="dlq_messages", threshold=0,
                             duration_seconds=0)
    ingest("node-a", {"namespaces": {instance.namespace: {"groups": {"billing": {"dlq_messages": 4}}}}}, now=T0)
    evaluate(django_capture_on_commit_callbacks, T0)
    [(rcpt, mail)] = smtp.messages
    assert rcpt == ["oncall@acme.example"] and "DLQ not empty" in mail["Subject"]
    assert "4 messages" in smtp.bodies()[0]
    # the node stops reporting: no data is not a firing condition
    evaluate(django_capture_on_commit_callbacks, T0 + timedelta(minutes=10))
    assert Alert.objects.get().status == "resolved" and "RESOLVED" in smtp.messages[1][1]["Subject"]


def test_default_rules_created_with_every_instance(tenant, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.owner.post("/api/v1/instances/", {"name": "prod"}, format="json")
    assert response.status_code == 201
    rules = AlertRule.objects.filter(instance_id=response.json()["id"])
    assert {r.kind for r in rules} == {"consumer_lag", "message_age", "dlq_messages", "send_throttled", "storage_quota"}
    assert all(r.enabled and r.is_default and r.scope == "instance" for r in rules)
    # idempotent
    assert alerting.alert_rules_create_defaults(instance=rules[0].instance) == []


def test_storage_quota_and_org_budget_rules(make_tenant, smtp, django_capture_on_commit_callbacks) -> None:
    acme = make_tenant("acme")  # standard: 50 GiB per instance, 200 GiB storage and 5000 TPS per organisation
    a = tenant_services.instance_create(organisation=acme.organisation, name="a", actor=tenant_services.SYSTEM)
    b = tenant_services.instance_create(organisation=acme.organisation, name="b", actor=tenant_services.SYSTEM)
    quota = AlertRule.objects.create(instance=a, name="A storage", kind="storage_quota", threshold=80,
                                     duration_seconds=0)
    storage = AlertRule.objects.create(instance=a, name="Org storage", kind="org_storage_budget", threshold=50,
                                       duration_seconds=0)
    tps = AlertRule.objects.create(instance=a, name="Org send TPS", kind="org_send_tps_budget", threshold=50,
                                   duration_seconds=0)
    minute = T0.replace(second=0)
    # 45 GiB in a (90% of its quota), 60 GiB in b: 105 GiB = 52.5% of the organisation budget
    ingest("node-a", lag_report(a.namespace, 0, storage=45 * GiB, sent=0), now=minute)
    ingest("node-b", lag_report(b.namespace, 0, storage=60 * GiB, sent=0), now=minute)
    # 90 000 + 120 000 messages in one minute = 3500 TPS = 70% of 5000
    ingest("node-a", lag_report(a.namespace, 0, storage=45 * GiB, sent=90_000), now=minute + timedelta(seconds=40))
    ingest("node-b", lag_report(b.namespace, 0, storage=60 * GiB, sent=120_000), now=minute + timedelta(seconds=40))
    evaluate(django_capture_on_commit_callbacks, minute + timedelta(seconds=65))
    fired = {al.rule_id: al for al in Alert.objects.all()}
    assert set(fired) == {quota.pk, storage.pk, tps.pk}
    assert fired[quota.pk].value == pytest.approx(90.0)
    assert fired[storage.pk].value == pytest.approx(52.5) and fired[storage.pk].subject == "organisation"
    assert fired[tps.pk].value == pytest.approx(70.0)
    bodies = {m["Subject"]: body for (_, m), body in zip(smtp.messages, smtp.bodies(), strict=True)}
    org_mail = next(body for subject, body in bodies.items() if "Org storage" in subject)
    assert "52.5" in org_mail and "% of the organisation storage budget" in org_mail
    # a smaller threshold than usage on another organisation never sees acme's numbers
    other = make_tenant("globex")
    c = tenant_services.instance_create(organisation=other.organisation, name="c", actor=tenant_services.SYSTEM)
    AlertRule.objects.create(instance=c, name="Globex storage", kind="org_storage_budget", threshold=1,
                             duration_seconds=0)
    evaluate(django_capture_on_commit_callbacks, minute + timedelta(seconds=70))
    assert not Alert.objects.filter(instance=c).exists()


def test_platform_rules_from_plain_values_go_to_operators(db, smtp, django_capture_on_commit_callbacks) -> None:
    nodes = [NodeFacts("node-a", heartbeat_age_seconds=5, disk_used_percent=91.5, restarts_last_hour=0),
             NodeFacts("node-b", heartbeat_age_seconds=300, disk_used_percent=None, restarts_last_hour=4),
             NodeFacts("node-c", heartbeat_age_seconds=None, disk_used_percent=10, restarts_last_hour=0)]
    assert measure_nodes("node_down", nodes) == {"node:node-a": 5, "node:node-b": 300}
    assert measure_nodes("node_disk", nodes) == {"node:node-a": 91.5, "node:node-c": 10}
    assert measure_nodes("node_restart_loop", nodes)["node:node-b"] == 4
    rules = {r.kind: r for r in alerting.platform_rules_ensure_defaults()}
    assert alerting.platform_rules_ensure_defaults()[0].pk == rules["node_down"].pk  # idempotent
    AlertRule.objects.filter(pk=rules["node_disk"].pk).update(duration_seconds=0)
    rules["node_disk"].refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        for kind in ("node_down", "node_disk", "node_restart_loop"):
            alert_rule_evaluate(rule=rules[kind], now=T0, measured=measure_nodes(kind, nodes))
    subjects = sorted((a.kind, a.subject) for a in Alert.objects.all())
    assert subjects == [("node_disk", "node:node-a"), ("node_down", "node:node-b"),
                        ("node_restart_loop", "node:node-b")]
    assert len(smtp.messages) == 3 and all(rcpt == ["ops@platform.example"] for rcpt, _ in smtp.messages)
    assert any("node-b" in body and "300" in body for body in smtp.bodies())


def test_platform_node_down_from_fleet_rows(db, smtp, django_capture_on_commit_callbacks) -> None:
    from brokers.models import BrokerNode, Cluster, NodeEvent

    cluster = Cluster.objects.create(name="shared-1", kind="shared")
    node = BrokerNode.objects.create(cluster=cluster, name="n1", host_name="local", status="down",
                                     last_heartbeat_at=T0 - timedelta(minutes=5))
    for _ in range(4):
        NodeEvent.objects.create(node=node, kind="restarted")
    NodeEvent.objects.filter(node=node).update(created_at=T0 - timedelta(minutes=10))
    ingest(node, {"node": {"disk_used_bytes": 95, "disk_free_bytes": 5}}, now=T0)
    alerting.platform_rules_ensure_defaults()
    counts = evaluate(django_capture_on_commit_callbacks, T0)
    assert counts[FIRING] == 2  # down for 300 s > 60 s; 4 restarts > 3 (disk needs 5 minutes)
    assert {a.kind for a in Alert.objects.all()} == {"node_down", "node_restart_loop"}
    assert all("n1" in body for body in smtp.bodies())
