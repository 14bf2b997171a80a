"""Editing through the console (Django's test client): alert rules and contacts, topics, consumer
groups, instance quotas, and the operators' plan assignment. The services decide and audit; the
pages show their refusals next to the field, keep the API's roles, and answer 404 for another
organisation's objects before any role check."""
from __future__ import annotations

import html
from typing import Any

import pytest

from brokers.models import Alert, AlertContact, AlertRule, AlertStatus
from brokers.services import alerting
from tenants import services
from tenants.models import AuditLog, ConsumerGroup, Instance, Organisation, Topic
from tests.console.conftest import browser

pytestmark = pytest.mark.django_db


@pytest.fixture
def instance(tenant: Any) -> Instance:
    instance = services.instance_create(organisation=tenant.organisation, name="prod", actor=services.SYSTEM)
    services.topic_create(instance=instance, name="orders", queue_count=4, actor=services.SYSTEM)
    services.group_create(instance=instance, name="billing", actor=services.SYSTEM)
    return instance


@pytest.fixture
def rule(instance: Instance) -> AlertRule:
    return alerting.alert_rule_create(instance=instance, actor=services.SYSTEM, name="Billing is behind",
                                      kind="consumer_lag", threshold=100, duration_seconds=60)


RULE_FORM = {"name": "Billing is behind", "enabled": "on", "threshold": "250", "topic": "", "group": "billing",
             "duration_seconds": "120", "recipients": "oncall@acme.example, Lead@Acme.example"}


def test_member_edits_an_alert_rule_and_the_change_is_audited(tenant: Any, rule: AlertRule) -> None:
    member = browser(tenant.users["member"])
    url = f"/alerts/rules/{rule.pk}/"
    page = member.get(url).content.decode()
    assert 'value="100.0"' in page and "fixed once created" in page and "messages" in page  # the unit

    bad = member.post(url, {**RULE_FORM, "threshold": "-1", "recipients": "not-an-address"})
    assert bad.status_code == 400
    body = bad.content.decode()
    assert 'id="id_threshold_error"' in body and "“not-an-address” is not an e-mail address." in body
    assert AlertRule.objects.get(pk=rule.pk).threshold == 100

    saved = member.post(url, {k: v for k, v in RULE_FORM.items() if k != "enabled"})  # unticked: disabled
    assert saved.status_code == 302 and saved.url == f"/alerts/?instance={rule.instance_id}"
    rule.refresh_from_db()
    assert (rule.threshold, rule.duration_seconds, rule.enabled, rule.group) == (250, 120, False, "billing")
    assert rule.recipients == ["oncall@acme.example", "Lead@Acme.example"]
    entry = AuditLog.objects.get(object_type="alert_rule", object_id=str(rule.pk), action="update")
    assert entry.actor == tenant.users["member"]
    assert entry.before["threshold"] == 100 and entry.after["threshold"] == 250 and entry.after["enabled"] is False

    listing = member.get(f"/alerts/?instance={rule.instance_id}").content.decode()
    assert "oncall@acme.example, Lead@Acme.example" in listing and "disabled" in listing


def test_rule_delete_confirmation_names_the_history_then_deletes(tenant: Any, rule: AlertRule) -> None:
    from django.utils import timezone

    now = timezone.now()
    Alert.objects.create(rule=rule, instance=rule.instance, subject="group:billing", kind=rule.kind, threshold=100,
                         value=300, peak_value=300, last_value=300, fired_at=now, last_notified_at=now,
                         status=AlertStatus.FIRING)
    member = browser(tenant.users["member"])
    url = f"/alerts/rules/{rule.pk}/delete/"
    confirm = member.get(url).content.decode()
    assert "its alert history: 1 alert(s)" in confirm and "1 alert(s) firing now close" in confirm
    assert AlertRule.objects.filter(pk=rule.pk).exists()  # the page alone changes nothing
    assert member.post(url).status_code == 302
    assert not AlertRule.objects.filter(pk=rule.pk).exists() and not Alert.objects.exists()
    assert AuditLog.objects.filter(object_type="alert_rule", object_id=str(rule.pk), action="delete").count() == 1


def test_viewers_read_rules_but_cannot_change_them_and_strangers_get_404(tenant: Any, other_tenant: Any,
                                                                        rule: AlertRule) -> None:
    viewer = browser(tenant.users["viewer"])
    listing = viewer.get("/alerts/").content.decode()
    assert "Billing is behind" in listing and f"/alerts/rules/{rule.pk}/" not in listing and "Create rule" not in listing
    for url in (f"/alerts/rules/{rule.pk}/", f"/alerts/rules/{rule.pk}/delete/"):
        assert viewer.get(url).status_code == 403
        assert viewer.post(url, RULE_FORM).status_code == 403
    stranger = browser(other_tenant.users["owner"])
    for url in (f"/alerts/rules/{rule.pk}/", f"/alerts/rules/{rule.pk}/delete/", f"/alerts/?instance={rule.instance_id}"):
        assert stranger.get(url).status_code == 404, url
        assert stranger.post(url, RULE_FORM).status_code == 404, url
    assert AlertRule.objects.get(pk=rule.pk).threshold == 100
    assert not AuditLog.objects.filter(object_type="alert_rule", action__in=["update", "delete"]).exists()


def test_admins_manage_contacts_members_read_strangers_get_404(tenant: Any, other_tenant: Any) -> None:
    admin = browser(tenant.users["admin"])
    assert admin.post("/alerts/contacts/", {"email": "Oncall@Acme.example", "name": "On call"}).status_code == 302
    contact = AlertContact.objects.get(organisation=tenant.organisation)
    assert contact.email == "oncall@acme.example"
    admin.post("/alerts/contacts/", {"email": "ops@acme.example"})
    taken = admin.post(f"/alerts/contacts/{contact.pk}/", {"email": "ops@acme.example", "name": ""})
    assert taken.status_code == 400 and "is already an alert contact." in taken.content.decode()
    assert admin.post(f"/alerts/contacts/{contact.pk}/", {"email": "pager@acme.example", "name": "Pager"}).status_code == 302
    contact.refresh_from_db()
    assert (contact.email, contact.name) == ("pager@acme.example", "Pager")
    assert AuditLog.objects.filter(object_type="alert_contact", action="update", actor=tenant.users["admin"]).count() == 1

    member = browser(tenant.users["member"])
    page = member.get("/alerts/contacts/").content.decode()
    assert "pager@acme.example" in page and "Add contact" not in page and f"/alerts/contacts/{contact.pk}/" not in page
    for url in (f"/alerts/contacts/{contact.pk}/", f"/alerts/contacts/{contact.pk}/delete/"):
        assert member.get(url).status_code == 403
    assert member.post("/alerts/contacts/", {"email": "x@acme.example"}).status_code == 403
    stranger = browser(other_tenant.users["owner"])
    for url in (f"/alerts/contacts/{contact.pk}/", f"/alerts/contacts/{contact.pk}/delete/"):
        assert stranger.get(url).status_code == 404 and stranger.post(url, {"email": "x@y.example"}).status_code == 404
    assert "pager@acme.example" not in stranger.get("/alerts/contacts/").content.decode()

    confirm = admin.get(f"/alerts/contacts/{contact.pk}/delete/").content.decode()
    assert "pager@acme.example stops receiving the alerts" in confirm and "last contact" not in confirm
    assert admin.post(f"/alerts/contacts/{contact.pk}/delete/").status_code == 302
    last = AlertContact.objects.get(organisation=tenant.organisation)
    assert "it is the last contact" in admin.get(f"/alerts/contacts/{last.pk}/delete/").content.decode()
    assert AuditLog.objects.filter(object_type="alert_contact", action="delete").count() == 1


def test_topic_edit_adds_queues_refuses_shrinking_and_keeps_the_type(tenant: Any, other_tenant: Any,
                                                                      instance: Instance) -> None:
    topic = instance.topics.get()
    url = f"/instances/{instance.pk}/topics/{topic.pk}/edit/"
    member = browser(tenant.users["member"])
    page = member.get(url).content.decode()
    assert "Normal — fixed once created" in page and 'name="message_type"' not in page and 'name="name"' not in page

    shrink = member.post(url, {"queue_count": "2", "retention_hours": "24", "description": ""})
    assert shrink.status_code == 400 and "queues can be added but not removed." in shrink.content.decode()
    too_long = member.post(url, {"queue_count": "4", "retention_hours": str(instance.retention_hours + 1),
                                 "description": ""})
    assert too_long.status_code == 400
    assert f"At most the instance's retention, {instance.retention_hours} h." in html.unescape(too_long.content.decode())
    assert Topic.objects.get(pk=topic.pk).queue_count == 4 and not AuditLog.objects.filter(
        object_type="topic", action="update").exists()

    assert member.post(url, {"queue_count": "8", "retention_hours": "24", "description": "orders v2"}).status_code == 302
    topic.refresh_from_db()
    assert (topic.queue_count, topic.retention_hours, topic.description) == (8, 24, "orders v2")
    entry = AuditLog.objects.get(object_type="topic", action="update")
    assert entry.before["queue_count"] == 4 and entry.after["queue_count"] == 8

    assert browser(tenant.users["viewer"]).post(url, {"queue_count": "9", "retention_hours": "24"}).status_code == 403
    assert browser(other_tenant.users["owner"]).get(url).status_code == 404


def test_group_edit_with_inline_backoff_error(tenant: Any, other_tenant: Any, instance: Instance) -> None:
    group = instance.groups.get()
    url = f"/instances/{instance.pk}/groups/{group.pk}/edit/"
    form = {"delivery": "broadcast", "max_delivery_attempts": "3", "retry_initial_backoff_ms": "5000",
            "retry_max_backoff_ms": "1000", "retry_backoff_multiplier": "1.5", "description": ""}
    member = browser(tenant.users["member"])
    bad = member.post(url, form)
    assert bad.status_code == 400 and 'id="id_retry_max_backoff_ms_error"' in bad.content.decode()
    assert ConsumerGroup.objects.get(pk=group.pk).max_delivery_attempts == 16
    done = member.post(url, {**form, "retry_max_backoff_ms": "60000", "fifo": "on"})
    assert done.status_code == 302 and done.url == f"/instances/{instance.pk}/groups/{group.pk}/"
    group.refresh_from_db()
    assert (group.delivery, group.fifo, group.max_delivery_attempts, group.retry_max_backoff_ms) == (
        "broadcast", True, 3, 60000)
    assert AuditLog.objects.get(object_type="consumer_group", action="update").after["max_delivery_attempts"] == 3
    assert browser(tenant.users["viewer"]).get(url).status_code == 403
    assert browser(other_tenant.users["member"]).post(url, form).status_code == 404


def test_instance_quotas_lowered_not_raised_above_the_plan(tenant: Any, instance: Instance) -> None:
    url = f"/instances/{instance.pk}/edit/"
    member = browser(tenant.users["member"])
    plan = tenant.organisation.plan
    form = {"description": "orders", "send_tps": "50", "receive_tps": "100", "storage_mib": "512",
            "retention_hours": "24", "max_message_kib": "1024"}
    above = member.post(url, {**form, "send_tps": str(plan.send_tps + 1)})
    assert above.status_code == 400
    assert f"Your plan allows at most {plan.send_tps} here." in above.content.decode()
    assert 'id="id_send_tps_error"' in above.content.decode()
    assert member.post(url, form).status_code == 302
    instance.refresh_from_db()
    assert (instance.send_tps, instance.storage_bytes, instance.max_message_bytes) == (50, 512 * 2**20, 2**20)
    assert instance.topics.get().retention_hours == 24  # lowered with the instance
    assert AuditLog.objects.filter(object_type="instance", action="update", actor=tenant.users["member"]).count() == 1
    assert browser(tenant.users["viewer"]).post(url, form).status_code == 403
    # A size set to the byte through the API survives a save that leaves its rounded value alone.
    services.instance_update(instance=instance, actor=services.SYSTEM, storage_bytes=512 * 2**20 + 1)
    assert member.post(url, {**form, "send_tps": "40"}).status_code == 302
    instance.refresh_from_db()
    assert (instance.send_tps, instance.storage_bytes) == (40, 512 * 2**20 + 1)


def test_operators_assign_any_plan_others_cannot(tenant: Any, make_user: Any, instance: Instance) -> None:
    org = tenant.organisation
    url = f"/operators/organisations/{org.pk}/plan/"
    assert browser(tenant.users["owner"]).post(url, {f"org{org.pk}-plan": "dedicated"}).status_code == 403
    staff = browser(make_user("ops@platform.example", is_staff=True))
    assert f'action="{url}"' in staff.get("/operators/").content.decode()
    done = staff.post(url, {f"org{org.pk}-plan": "dedicated"}, follow=True)
    assert "is now on the Dedicated plan" in done.content.decode()
    assert Organisation.objects.get(pk=org.pk).plan.code == "dedicated"
    assert AuditLog.objects.filter(action="plan_assign", organisation=org).count() == 1
    # A plan the current usage would not fit is refused and said so.
    services.instance_update(instance=instance, actor=services.SYSTEM, send_tps=5000)
    refused = staff.post(url, {f"org{org.pk}-plan": "free"}, follow=True).content.decode()
    assert "stays on Dedicated" in refused and Organisation.objects.get(pk=org.pk).plan.code == "dedicated"
    assert staff.post("/operators/organisations/999999/plan/", {"org999999-plan": "free"}).status_code == 404
