"""Alert rules and history, audit log filters, and the operators' page."""
from __future__ import annotations

from typing import Any

import pytest

from brokers.models import AlertRule, BrokerNode
from brokers.services.fleet import shared_cluster_ensure_local
from tenants import services
from tenants.models import Instance
from tests.console.conftest import browser

pytestmark = pytest.mark.django_db


@pytest.fixture
def instance(tenant: Any) -> Instance:
    return services.instance_create(organisation=tenant.organisation, name="prod", actor=services.SYSTEM)


def test_alert_rules_members_write_viewers_read(tenant: Any, other_tenant: Any, instance: Instance) -> None:
    theirs = services.instance_create(organisation=other_tenant.organisation, name="theirs", actor=services.SYSTEM)
    rule = {"instance": instance.pk, "name": "lag", "kind": "consumer_lag", "threshold": 50, "duration_seconds": 60,
            "recipients": "oncall@acme.example"}
    assert browser(tenant.users["viewer"]).post("/alerts/", rule).status_code == 403
    member = browser(tenant.users["member"])
    assert member.post("/alerts/", rule).status_code == 302
    created = AlertRule.objects.get(instance=instance, name="lag")
    assert created.recipients == ["oncall@acme.example"] and created.threshold == 50
    # Another organisation's instance is not a choice; platform kinds are not offered.
    refused = member.post("/alerts/", {**rule, "instance": theirs.pk, "name": "x"})
    assert refused.status_code == 400 and not AlertRule.objects.filter(name="x").exists()
    assert member.post("/alerts/", {**rule, "kind": "node_down", "name": "y"}).status_code == 400
    viewer_page = browser(tenant.users["viewer"]).get("/alerts/").content.decode()
    assert "Consumer lag above N messages" in viewer_page and "Create rule" not in viewer_page
    assert browser(other_tenant.users["owner"]).post(f"/alerts/rules/{created.pk}/delete/").status_code == 404
    member.post(f"/alerts/rules/{created.pk}/delete/")
    assert not AlertRule.objects.filter(pk=created.pk).exists()


def test_audit_log_admin_only_with_filters(tenant: Any, other_tenant: Any, instance: Instance) -> None:
    services.topic_create(instance=instance, name="orders", actor=services.SYSTEM)
    services.instance_create(organisation=other_tenant.organisation, name="globex-secret", actor=services.SYSTEM)
    assert browser(tenant.users["member"]).get("/audit/").status_code == 403
    admin = browser(tenant.users["admin"])
    everything = admin.get("/audit/").content.decode()
    assert "orders" in everything and "globex-secret" not in everything
    only_topics = admin.get("/audit/", {"object_type": "topic"}).content.decode()
    assert "orders" in only_topics and "instance #" not in only_topics
    bad = admin.get("/audit/", {"created_after": "yesterday"}).content.decode()
    assert 'class="error"' in bad


def test_operators_page_is_staff_only(tenant: Any, make_user: Any) -> None:
    _cluster, node = shared_cluster_ensure_local()
    assert browser(tenant.users["owner"]).get("/operators/").status_code == 403
    staff = make_user("ops@platform.example", is_staff=True)
    body = browser(staff).get("/operators/").content.decode()
    assert node.name in body and BrokerNode.objects.count() >= 1
