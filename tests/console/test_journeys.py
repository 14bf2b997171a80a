"""Browser journeys: Playwright (sync API) driving Debian's chromium against a live server.

HTTP pages only, so pytest-django's (WSGI) ``live_server`` serves them; e-mails cross SMTP to the
suite's server on loopback (tests/conftest.py) and are read from its inbox. Screenshots of the main pages go
to test-artifacts/screenshots/.
"""
from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from tenants import services
from tenants.models import Instance, InstanceStatus
from tests.conftest import PASSWORD
from tests.console.conftest import CHROMIUM, log_in, shot
from tests.smtp import Inbox

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (.ci/run installs it)"),
]


def test_signup_to_instance_topic_and_credential(page: Any, plans: Any, smtp: Inbox) -> None:
    from playwright.sync_api import expect

    # Sign up; inline errors first.
    page.goto("/signup/")
    shot(page, "01-signup")
    page.get_by_label("Organisation name").fill("Acme Rockets")
    page.get_by_label("E-mail").fill("ann@acme.example")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Sign up").click()
    expect(page.locator("#id_password_error")).to_be_visible()
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your e-mail")).to_be_visible()

    # Confirm through the link in the e-mail.
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", smtp.outbox[-1].body).group(0)
    page.goto(urlsplit(link).path)
    expect(page.get_by_text("is confirmed")).to_be_visible()

    # Log in: the empty state says what to do next.
    log_in(page, "ann@acme.example")
    expect(page.get_by_role("heading", name="No instances yet")).to_be_visible()
    shot(page, "02-instances-empty")
    page.get_by_role("link", name="Create your first instance").click()

    # Create an instance: it is provisioning and the status updates by itself.
    page.get_by_label("Name").fill("prod")
    page.get_by_role("button", name="Create instance").click()
    expect(page.locator("#instance-status")).to_contain_text("Provisioning")
    instance = Instance.objects.get(name="prod")
    services.instance_set_status(instance=instance, status=InstanceStatus.READY, endpoint="127.0.0.1:18081",
                                 actor=services.SYSTEM)
    expect(page.locator("#instance-status")).to_contain_text("Ready", timeout=15_000)
    expect(page.locator("#endpoint")).to_have_value("127.0.0.1:18081")

    # A FIFO topic.
    page.get_by_role("link", name="New topic").click()
    page.get_by_label("Name").fill("orders")
    page.get_by_label("Message type").select_option("FIFO")
    page.get_by_label("Queues").fill("4")
    page.get_by_role("button", name="Create topic").click()
    expect(page.get_by_role("cell", name="orders", exact=True)).to_be_visible()
    # The quick start has endpoint, namespace and the topic, with the secret left as a placeholder.
    code = page.locator("#code-python").inner_text()
    assert "127.0.0.1:18081" in code and instance.namespace in code and '"orders"' in code and "YOUR_SECRET_KEY" in code
    page.get_by_role("tab", name="Go").click()
    expect(page.locator("#code-go")).to_be_visible()
    expect(page.locator("#code-go")).to_contain_text(instance.namespace)
    shot(page, "03-instance-detail")

    # A credential: the SecretKey is shown once.
    page.get_by_role("link", name="Credentials", exact=True).first.click()
    page.get_by_label("Description").fill("order service")
    page.get_by_role("button", name="Create credential").click()
    secret = page.locator("#new-sk").input_value()
    assert re.fullmatch(r"[A-Za-z0-9]{40}", secret)
    expect(page.get_by_text("it is shown only once")).to_be_visible()
    shot(page, "04-credential-created")
    page.goto(page.url)
    expect(page.locator("#new-sk")).to_have_count(0)
    assert secret not in page.content()


def test_member_cannot_open_credentials_and_foreign_instance_is_not_found(page: Any, make_tenant: Any) -> None:
    from playwright.sync_api import expect

    acme, globex = make_tenant("acme"), make_tenant("globex")
    mine = services.instance_create(organisation=acme.organisation, name="prod", actor=services.SYSTEM)
    theirs = services.instance_create(organisation=globex.organisation, name="secret-prod", actor=services.SYSTEM)

    log_in(page, "member@acme.example")
    page.goto(f"/instances/{mine.pk}/")
    expect(page.get_by_role("heading", name="prod")).to_be_visible()
    expect(page.get_by_role("link", name="Credentials")).to_have_count(0)
    response = page.goto(f"/instances/{mine.pk}/credentials/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()

    response = page.goto(f"/instances/{theirs.pk}/")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    assert "secret-prod" not in page.content()


def test_viewer_on_a_narrow_screen(page: Any, make_tenant: Any) -> None:
    from playwright.sync_api import expect

    acme = make_tenant("acme")
    instance = services.instance_create(organisation=acme.organisation, name="prod", actor=services.SYSTEM)
    services.topic_create(instance=instance, name="orders", actor=services.SYSTEM)
    page.set_viewport_size({"width": 390, "height": 844})
    log_in(page, "viewer@acme.example")
    page.goto(f"/instances/{instance.pk}/")
    expect(page.get_by_role("cell", name="orders", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="New topic")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile("Delete"))).to_have_count(0)
    # Nothing wider than the screen except the scrollable code and tables.
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    shot(page, "05-instance-narrow-viewer")


def test_dashboard_draws_charts_from_the_metrics_api(page: Any, make_tenant: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone
    from playwright.sync_api import expect

    from brokers.metrics_ingest import ingest

    acme = make_tenant("acme")
    instance = services.instance_create(organisation=acme.organisation, name="prod", actor=services.SYSTEM)
    services.topic_create(instance=instance, name="orders", actor=services.SYSTEM)
    services.group_create(instance=instance, name="billing", actor=services.SYSTEM)
    now = timezone.now().replace(second=0, microsecond=0)
    for minutes_ago, total in ((5, 0), (4, 300), (3, 900), (2, 1300), (1, 2100), (0, 2400)):
        ingest("node-a", {"boot_id": "b", "namespaces": {instance.namespace: {
            "storage_bytes": 1_000_000 + total * 1000, "topics": {"orders": {"messages_in": total, "messages_out": total // 2}},
            "groups": {"billing": {"topics": {"orders": {"lag_messages": total // 2, "oldest_age_seconds": 30}}}}}}},
            now=now - timedelta(minutes=minutes_ago))
    log_in(page, "viewer@acme.example")
    page.goto(f"/instances/{instance.pk}/metrics/")
    expect(page.locator('.chart[data-metric="messages_in"] canvas')).to_have_count(1)
    expect(page.locator('.chart-note[data-for="messages_in"]')).to_contain_text("6 points, latest 300")
    expect(page.locator("#summary")).to_contain_text("billing")
    shot(page, "06-dashboard")
