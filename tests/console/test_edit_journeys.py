"""Browser journeys for editing (Playwright's sync API driving Debian's chromium against the live
server): alert rules created, edited and deleted after a confirmation; alert contacts added,
edited and deleted; a topic and a consumer group edited with inline errors first; viewers and
members see no edit controls they cannot use and are refused when they forge the URL; another
organisation's rule answers not found. Screenshots go to test-artifacts/screenshots/."""
from __future__ import annotations

import os
import re
from typing import Any

import pytest

from brokers.models import AlertContact, AlertRule
from brokers.services import alerting
from tenants import services
from tenants.models import AuditLog, ConsumerGroup, Topic
from tests.console.conftest import CHROMIUM, log_in, shot

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (.ci/run installs it)"),
]


def test_alert_rule_and_contact_create_edit_delete(page: Any, make_tenant: Any) -> None:
    from playwright.sync_api import expect

    acme = make_tenant("acme")
    instance = services.instance_create(organisation=acme.organisation, name="prod", actor=services.SYSTEM)
    services.instance_create(organisation=acme.organisation, name="staging", actor=services.SYSTEM)
    log_in(page, "admin@acme.example")

    # From the instance page to its rules: the list and the new-rule form are about this instance.
    page.goto(f"/instances/{instance.pk}/")
    page.get_by_role("link", name="Alert rules").click()
    expect(page.get_by_role("heading", name="Alerts of prod")).to_be_visible()
    expect(page.get_by_label("Instance", exact=True)).to_have_value(str(instance.pk))
    page.get_by_label("Name", exact=True).fill("Billing is behind")
    page.get_by_label("Condition").select_option("consumer_lag")
    page.get_by_label("Threshold").fill("-5")
    page.get_by_label("Only consumer group").fill("billing")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator("#id_threshold_error")).to_be_visible()  # inline, nothing created
    expect(page.get_by_label("Threshold")).to_have_attribute("aria-invalid", "true")
    assert not AlertRule.objects.filter(name="Billing is behind").exists()
    page.get_by_label("Threshold").fill("500")
    page.get_by_role("button", name="Create rule").click()
    expect(page.locator(".flash")).to_contain_text("Alert rule “Billing is behind” created.")
    row = page.get_by_role("row").filter(has_text="Billing is behind")
    expect(row).to_contain_text("500.0")
    expect(row).to_contain_text("enabled")

    # Edit: threshold, duration, disable, recipients (a bad address first).
    page.get_by_role("link", name="Edit rule Billing is behind").click()
    expect(page.get_by_text("fixed once created")).to_be_visible()
    page.get_by_label("Threshold").fill("2000")
    page.get_by_label("Holds for (seconds)").fill("600")
    page.get_by_role("checkbox", name=re.compile("Enabled")).uncheck()
    page.get_by_label("Recipients (e-mails, comma-separated)").fill("oncall@acme.example, nobody")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator("#id_recipients_error")).to_contain_text("“nobody” is not an e-mail address.")
    page.get_by_label("Recipients (e-mails, comma-separated)").fill("oncall@acme.example")
    shot(page, "11-alert-rule-edit")
    page.get_by_role("button", name="Save rule").click()
    expect(page.locator(".flash")).to_contain_text("Alert rule “Billing is behind” saved.")
    row = page.get_by_role("row").filter(has_text="Billing is behind")
    for text in ("2000.0", "600 s", "disabled", "oncall@acme.example"):
        expect(row).to_contain_text(text)
    rule = AlertRule.objects.get(name="Billing is behind")
    assert (rule.threshold, rule.duration_seconds, rule.enabled, rule.recipients) == (2000, 600, False, ["oncall@acme.example"])
    shot(page, "12-alert-rules")

    # Delete: a confirmation page says what goes; Cancel keeps it, Delete removes it.
    page.get_by_role("link", name="Delete rule Billing is behind").click()
    expect(page.get_by_role("heading", name="Delete alert rule “Billing is behind”?")).to_be_visible()
    expect(page.get_by_text("its alert history: 0 alert(s)")).to_be_visible()
    shot(page, "13-alert-rule-delete")
    page.get_by_role("link", name="Cancel").click()
    expect(page.get_by_role("row").filter(has_text="Billing is behind")).to_have_count(1)
    page.get_by_role("link", name="Delete rule Billing is behind").click()
    page.get_by_role("button", name="Delete alert rule").click()
    expect(page.locator(".flash")).to_contain_text("Alert rule “Billing is behind” deleted.")
    expect(page.get_by_role("row").filter(has_text="Billing is behind")).to_have_count(0)
    assert [e.action for e in AuditLog.objects.filter(object_type="alert_rule", object_id=str(rule.pk))
            .order_by("id")] == ["create", "update", "delete"]

    # Contacts: add (an invalid address first), edit, delete after a confirmation.
    page.get_by_role("link", name=re.compile(r"^Contacts")).click()
    expect(page.get_by_text("No alert contacts")).to_be_visible()
    page.get_by_label("E-mail").fill("not an address")
    page.get_by_role("button", name="Add contact").click()
    expect(page.locator("#id_email_error")).to_be_visible()
    page.get_by_label("E-mail").fill("Oncall@Acme.example")
    page.get_by_label("Name").fill("On call")
    page.get_by_role("button", name="Add contact").click()
    expect(page.get_by_role("cell", name="oncall@acme.example", exact=True)).to_be_visible()
    page.get_by_role("link", name="Edit contact oncall@acme.example").click()
    page.get_by_label("E-mail").fill("pager@acme.example")
    page.get_by_role("button", name="Save contact").click()
    expect(page.get_by_role("cell", name="pager@acme.example", exact=True)).to_be_visible()
    shot(page, "14-alert-contacts")
    page.get_by_role("link", name="Delete contact pager@acme.example").click()
    expect(page.get_by_text("it is the last contact: alerts then go to the organisation's owners and admins")).to_be_visible()
    page.get_by_role("button", name="Delete alert contact").click()
    expect(page.locator(".flash")).to_contain_text("pager@acme.example no longer receives alerts.")
    assert not AlertContact.objects.exists()
    assert [e.action for e in AuditLog.objects.filter(object_type="alert_contact").order_by("id")] == [
        "create", "update", "delete"]


def test_edit_a_topic_and_a_group(page: Any, make_tenant: Any) -> None:
    from playwright.sync_api import expect

    acme = make_tenant("acme")
    instance = services.instance_create(organisation=acme.organisation, name="prod", actor=services.SYSTEM)
    services.topic_create(instance=instance, name="orders", message_type="FIFO", queue_count=4, actor=services.SYSTEM)
    services.group_create(instance=instance, name="billing", actor=services.SYSTEM)
    log_in(page, "member@acme.example")
    page.goto(f"/instances/{instance.pk}/")

    page.get_by_role("link", name="Edit topic orders").click()
    expect(page.get_by_text("FIFO — fixed once created")).to_be_visible()
    expect(page.get_by_label("Message type")).to_have_count(0)
    page.get_by_label("Queues").fill("2")
    page.get_by_role("button", name="Save topic").click()
    expect(page.locator("#id_queue_count_error")).to_contain_text("queues can be added but not removed")
    page.get_by_label("Queues").fill("12")
    page.get_by_label("Retention (hours)").fill("48")
    shot(page, "15-topic-edit")
    page.get_by_role("button", name="Save topic").click()
    expect(page.locator(".flash")).to_contain_text("Topic “orders” saved.")
    row = page.get_by_role("row").filter(has_text="orders")
    expect(row).to_contain_text("12")
    expect(row).to_contain_text("48 h")
    assert Topic.objects.get(name="orders").queue_count == 12

    page.get_by_role("link", name="billing", exact=True).click()
    page.get_by_role("link", name="Edit group").click()
    page.get_by_label("Max delivery attempts").fill("3")
    page.get_by_label("First retry after (ms)").fill("5000")
    page.get_by_label("Longest retry wait (ms)").fill("1000")
    page.get_by_role("button", name="Save group").click()
    expect(page.locator("#id_retry_max_backoff_ms_error")).to_be_visible()
    page.get_by_label("Longest retry wait (ms)").fill("60000")
    page.get_by_label("Delivery", exact=True).select_option("broadcast")
    page.get_by_role("button", name="Save group").click()
    expect(page.locator(".flash")).to_contain_text("Consumer group “billing” saved.")
    expect(page.get_by_text("up to 3 deliveries, waiting 5000 ms")).to_be_visible()
    shot(page, "16-group-after-edit")
    group = ConsumerGroup.objects.get(name="billing")
    assert (group.max_delivery_attempts, group.retry_max_backoff_ms, group.delivery) == (3, 60000, "broadcast")
    assert AuditLog.objects.filter(object_type__in=["topic", "consumer_group"], action="update",
                                   actor=acme.users["member"]).count() == 2


def test_viewer_and_member_cannot_edit_and_a_foreign_rule_is_not_found(page: Any, make_tenant: Any) -> None:
    from playwright.sync_api import expect

    acme, globex = make_tenant("acme"), make_tenant("globex")
    instance = services.instance_create(organisation=acme.organisation, name="prod", actor=services.SYSTEM)
    topic = services.topic_create(instance=instance, name="orders", actor=services.SYSTEM)
    rule = AlertRule.objects.filter(instance=instance).first()  # a default rule of the instance
    contact = alerting.alert_contact_create(organisation=acme.organisation, email="oncall@acme.example",
                                            actor=services.SYSTEM)
    theirs = services.instance_create(organisation=globex.organisation, name="secret-prod", actor=services.SYSTEM)
    foreign = alerting.alert_rule_create(instance=theirs, actor=services.SYSTEM, name="Globex secret rule",
                                         kind="consumer_lag", threshold=1)

    # A viewer on a phone-sized screen reads the rules but gets no edit controls, and a forged
    # edit URL is refused.
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, "viewer@acme.example")
    page.goto(f"/instances/{instance.pk}/")
    expect(page.get_by_role("link", name="Edit instance")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("^Edit topic"))).to_have_count(0)
    page.get_by_role("link", name="Alert rules").click()
    expect(page.get_by_role("row").filter(has_text=rule.name)).to_have_count(1)
    expect(page.get_by_role("link", name=re.compile("^(Edit|Delete) rule"))).to_have_count(0)
    expect(page.get_by_role("button", name="Create rule")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    shot(page, "17-alerts-narrow-viewer")
    for url in (f"/alerts/rules/{rule.pk}/", f"/instances/{instance.pk}/topics/{topic.pk}/edit/"):
        assert page.goto(url).status == 403
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()

    # A member edits rules but not contacts (admins do).
    page.set_viewport_size({"width": 1280, "height": 860})
    page.context.clear_cookies()
    log_in(page, "member@acme.example")
    page.goto("/alerts/contacts/")
    expect(page.get_by_role("cell", name="oncall@acme.example", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("contact oncall"))).to_have_count(0)
    expect(page.get_by_text("Admins and owners manage the contacts.")).to_be_visible()
    assert page.goto(f"/alerts/contacts/{contact.pk}/").status == 403

    # Another organisation's rule: not found, and nothing of it shows.
    for url in (f"/alerts/rules/{foreign.pk}/", f"/alerts/rules/{foreign.pk}/delete/", f"/alerts/?instance={theirs.pk}"):
        response = page.goto(url)
        assert response.status == 404, url
        expect(page.get_by_role("heading", name="Not found")).to_be_visible()
        assert "Globex secret rule" not in page.content() and "secret-prod" not in page.content()
    shot(page, "18-foreign-rule-not-found")
    assert AlertRule.objects.get(pk=foreign.pk).threshold == 1
