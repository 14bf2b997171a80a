"""Console pages through Django's test client: scoping, roles, forms and the services they call."""
from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from tenants import services
from tenants.models import Instance, Topic
from tests.conftest import PASSWORD
from tests.console.conftest import browser
from tests.smtp import Inbox

pytestmark = pytest.mark.django_db


@pytest.fixture
def instance(tenant: Any) -> Instance:
    return services.instance_create(organisation=tenant.organisation, name="prod", actor=services.SYSTEM)


def test_signup_sends_confirmation_and_login_waits_for_it(plans: Any, smtp: Inbox) -> None:
    client = Client()
    response = client.post("/signup/", {"organisation_name": "Acme", "email": "Ann@Example.com", "password": PASSWORD})
    assert response.status_code == 200 and b"Check your e-mail" in response.content
    assert smtp.outbox[-1].to == ["ann@example.com"]
    refused = client.post("/login/", {"email": "ann@example.com", "password": PASSWORD})
    assert refused.status_code == 400 and b"Confirm your e-mail" in refused.content
    link = next(line for line in smtp.outbox[-1].body.splitlines() if "/accounts/confirm-email/" in line).strip()
    assert client.get(link[link.index("/accounts/"):]).status_code == 200
    assert client.post("/login/", {"email": "ann@example.com", "password": PASSWORD}).url == "/instances/"


def test_signup_errors_show_inline(plans: Any, make_user: Any) -> None:
    make_user("taken@example.com")
    response = Client().post("/signup/", {"organisation_name": "", "email": "taken@example.com", "password": "short"})
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="id_organisation_name_error"' in body and 'id="id_password_error"' in body
    response = Client().post("/signup/", {"organisation_name": "X", "email": "taken@example.com", "password": PASSWORD})
    assert response.status_code == 400 and 'id="id_email_error"' in response.content.decode()


def test_empty_state_says_what_to_do(tenant: Any) -> None:
    body = browser(tenant.users["member"]).get("/instances/").content.decode()
    assert "Create your first instance" in body
    viewer_body = browser(tenant.users["viewer"]).get("/instances/").content.decode()
    assert "Create your first instance" not in viewer_body and "can read but not create" in viewer_body


def test_create_instance_and_quick_start(tenant: Any) -> None:
    client = browser(tenant.users["member"])
    response = client.post("/instances/new/", {"name": "prod", "description": ""})
    instance = Instance.objects.get(organisation=tenant.organisation, name="prod")
    assert response.url == f"/instances/{instance.pk}/"
    body = client.get(response.url).content.decode()
    assert instance.namespace in body and "YOUR_SECRET_KEY" in body
    for sdk in ("rocketmq-python-client", "rocketmq-client-java", "rocketmq-clients/golang", "rocketmq-client-nodejs"):
        assert sdk in body
    assert 'hx-trigger="every 2s"' in body  # provisioning: the status polls


def test_duplicate_instance_name_is_an_inline_error(tenant: Any, instance: Instance) -> None:
    response = browser(tenant.users["owner"]).post("/instances/new/", {"name": "prod"})
    assert response.status_code == 400 and 'id="id_name_error"' in response.content.decode()


def test_topic_create_and_delete_needs_the_name(tenant: Any, instance: Instance) -> None:
    client = browser(tenant.users["member"])
    client.post(f"/instances/{instance.pk}/topics/new/", {"name": "orders", "message_type": "FIFO", "queue_count": 4, "description": ""})
    topic = Topic.objects.get(instance=instance, name="orders")
    assert (topic.message_type, topic.queue_count, topic.retention_hours) == ("FIFO", 4, instance.retention_hours)
    page = client.get(f"/instances/{instance.pk}/topics/{topic.pk}/delete/").content.decode()
    assert "every message stored in its 4 queue(s)" in page
    assert client.post(f"/instances/{instance.pk}/topics/{topic.pk}/delete/", {"confirm": "nope"}).status_code == 400
    assert Topic.objects.filter(pk=topic.pk).exists()
    client.post(f"/instances/{instance.pk}/topics/{topic.pk}/delete/", {"confirm": "orders"})
    assert not Topic.objects.filter(pk=topic.pk).exists()


def test_viewer_sees_no_mutate_buttons_and_cannot_post(tenant: Any, instance: Instance) -> None:
    client = browser(tenant.users["viewer"])
    body = client.get(f"/instances/{instance.pk}/").content.decode()
    assert "/topics/new/" not in body and "/delete/" not in body and "/credentials/" not in body
    assert client.post(f"/instances/{instance.pk}/topics/new/", {"name": "x", "message_type": "NORMAL", "queue_count": 1}).status_code == 403
    assert not instance.topics.exists()


def test_other_organisation_urls_are_not_found(tenant: Any, other_tenant: Any, instance: Instance) -> None:
    topic = services.topic_create(instance=instance, name="orders", actor=services.SYSTEM)
    client = browser(other_tenant.users["owner"])
    for url in (f"/instances/{instance.pk}/", f"/instances/{instance.pk}/status/", f"/instances/{instance.pk}/delete/",
                f"/instances/{instance.pk}/topics/{topic.pk}/delete/"):
        assert client.get(url).status_code == 404, url
    # A member of the other organisation: still 404, not the 403 of a role check.
    assert browser(other_tenant.users["member"]).get(f"/instances/{instance.pk}/topics/new/").status_code == 404


def test_switcher_refuses_foreign_organisation(tenant: Any, other_tenant: Any) -> None:
    client = browser(tenant.users["owner"])
    assert client.post("/organisations/switch/", {"organisation": other_tenant.organisation.pk}).status_code == 404


def test_api_token_shown_once(tenant: Any) -> None:
    client = browser(tenant.users["viewer"])
    body = client.post("/tokens/", {"name": "ci"}).content.decode()
    raw = re.search(r'id="new-token" class="mono" readonly value="(mqp_[^"]+)"', body).group(1)
    assert "shown only once" in body and len(raw) > 20
    assert raw not in client.get("/tokens/").content.decode()


def test_invitation_by_admin_only(tenant: Any, smtp: Inbox) -> None:
    assert browser(tenant.users["member"]).post("/invitations/", {"email": "x@example.com", "role": "viewer"}).status_code == 403
    response = browser(tenant.users["admin"]).post("/invitations/", {"email": "x@example.com", "role": "viewer"})
    assert response.status_code == 302 and smtp.outbox[-1].to == ["x@example.com"]


def test_credentials_admin_only_secret_once_rotate_revoke(tenant: Any, other_tenant: Any, instance: Instance) -> None:
    url = f"/instances/{instance.pk}/credentials/"
    assert browser(tenant.users["member"]).get(url).status_code == 403
    assert browser(tenant.users["viewer"]).get(url).status_code == 403
    assert browser(other_tenant.users["owner"]).get(url).status_code == 404
    client = browser(tenant.users["admin"])
    created = client.post(url, {"description": "orders app"})
    secret = re.search(r'id="new-sk" class="mono" readonly value="([A-Za-z0-9]{40})"', created.content.decode()).group(1)
    assert created["Cache-Control"].startswith("no-store") or "no-store" in created["Cache-Control"]
    credential = instance.credentials.get()
    assert secret not in client.get(url).content.decode()
    detail = f"{url}{credential.pk}/"
    rule = client.post(detail, {"resource_type": "group", "pattern": "billing", "actions": ["pub"], "effect": "allow"})
    assert rule.status_code == 400 and "only take the" in rule.content.decode()  # the service's rule, inline
    client.post(detail, {"resource_type": "topic", "pattern": "orders-*", "actions": ["pub", "sub"], "effect": "allow",
                         "source_cidrs": "10.0.0.0/8"})
    assert list(credential.acl_rules.values_list("pattern", "source_cidrs")) == [("orders-*", ["10.0.0.0/8"])]
    rotated = client.post(f"{detail}rotate/").content.decode()
    assert re.search(r'id="rotated-sk" class="mono" readonly value="[A-Za-z0-9]{40}"', rotated)
    assert credential.secrets.filter(revoked_at__isnull=True).count() == 2
    client.post(f"{detail}revoke/")
    credential.refresh_from_db()
    assert credential.revoked_at is not None


def test_a_credential_can_start_with_publish_and_subscribe_everywhere(tenant: Any, instance: Instance) -> None:
    url = f"/instances/{instance.pk}/credentials/"
    page = browser(tenant.users["admin"]).post(url, {"description": "quick start", "access": "publish_subscribe"})
    assert page.status_code == 200 and "Starting permissions" in page.content.decode()
    credential = instance.credentials.get()
    assert sorted(credential.acl_rules.values_list("resource_type", "pattern", "actions")) == [
        ("group", "*", ["sub"]), ("topic", "*", ["pub", "sub"])]


def test_static_files_served_without_a_front_proxy(client: Client) -> None:
    css = client.get("/static/console/console.css")
    assert css.status_code == 200 and css["Content-Type"].startswith("text/css") and "max-age" in css["Cache-Control"]
    assert b"--accent" in b"".join(css.streaming_content)
    assert client.get("/static/console/vendor/htmx.min.js").status_code == 200
    for bad in ("/static/console/../../settings.py", "/static/console/nope.css", "/static/%2e%2e/mqplatform/urls.py"):
        assert client.get(bad).status_code == 404, bad


def test_organisation_settings_roles_plan_and_delete(tenant: Any, instance: Instance, plans: Any) -> None:
    assert browser(tenant.users["member"]).post("/organisation/", {"action": "rename", "name": "X"}).status_code == 403
    admin = browser(tenant.users["admin"])
    admin.post("/organisation/", {"action": "rename", "name": "Acme Rockets"})
    tenant.organisation.refresh_from_db()
    assert tenant.organisation.name == "Acme Rockets"
    assert admin.post("/organisation/", {"action": "plan", "plan": "free"}).status_code == 403
    owner = browser(tenant.users["owner"])
    refused = owner.post("/organisation/", {"action": "plan", "plan": "free"})  # a standard-sized instance
    assert refused.status_code == 400 and "exceeded (limit 100, current 2000)" in refused.content.decode()
    tenant.organisation.refresh_from_db()
    assert tenant.organisation.plan.code == "standard"
    assert "dedicated" not in dict(refused.context["plan_form"].fields["plan"].choices)  # not self-service
    not_empty = owner.post("/organisation/", {"action": "delete", "confirm": "Acme Rockets"})
    assert not_empty.status_code == 400 and "instances first" in not_empty.content.decode()
