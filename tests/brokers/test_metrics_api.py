"""Metrics and alerting API: series and summary scoped to the caller's organisation (another
tenant's instance is 404), rule CRUD with roles, alert history, contacts."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from brokers.metrics_ingest import ingest
from brokers.models import Alert, AlertRule
from tests.conftest import create_instance

pytestmark = pytest.mark.django_db


def _traffic(namespace: str) -> None:
    now = timezone.now().replace(second=0, microsecond=0)
    base = {"boot_id": "b", "namespaces": {namespace: {"storage_bytes": 1000, "topics": {"orders": {"messages_in": 0}},
                                                       "groups": {"billing": {"dlq_messages": 2}}}}}
    ingest("node-a", base, now=now - timedelta(minutes=2))
    base["namespaces"][namespace]["topics"]["orders"]["messages_in"] = 120
    ingest("node-a", base, now=now - timedelta(minutes=1))
    base["namespaces"][namespace]["topics"]["orders"]["messages_in"] = 150
    ingest("node-a", base, now=now)


def test_series_and_summary_scoped(tenant, other_tenant) -> None:
    inst = create_instance(tenant.owner, "prod")
    from tenants.models import Instance

    _traffic(Instance.objects.get(pk=inst["id"]).namespace)
    viewer = tenant.clients["viewer"]
    body = viewer.get(f"/api/v1/instances/{inst['id']}/metrics/", {"metric": "messages_in", "topic": "orders"}).json()
    assert body["kind"] == "counter" and body["resolution"] == "1m"
    assert [v for _, v in body["points"]][:2] == [0, 120]
    summary = viewer.get(f"/api/v1/instances/{inst['id']}/metrics/summary/").json()
    assert summary["storage_bytes"] == 1000 and summary["groups"][0]["dlq_messages"] == 2
    assert summary["storage_quota_bytes"] == inst["storage_bytes"]

    # another organisation: 404 for both, same as a missing id
    for url in (f"/api/v1/instances/{inst['id']}/metrics/?metric=messages_in",
                f"/api/v1/instances/{inst['id']}/metrics/summary/", "/api/v1/instances/999999/metrics/summary/"):
        response = other_tenant.owner.get(url)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"

    bad = viewer.get(f"/api/v1/instances/{inst['id']}/metrics/", {"metric": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["fields"][0]["field"] == "metric"
    hours = viewer.get(f"/api/v1/instances/{inst['id']}/metrics/", {"metric": "messages_in", "resolution": "1h"})
    assert hours.status_code == 200 and hours.json()["points"] == []  # not rolled up yet


def test_rule_crud_roles_and_scoping(tenant, other_tenant) -> None:
    inst = create_instance(tenant.owner, "prod")
    theirs = create_instance(other_tenant.owner, "prod")
    rule = {"instance": inst["id"], "name": "lag", "kind": "consumer_lag", "threshold": 50, "duration_seconds": 60,
            "recipients": ["oncall@acme.example"]}
    assert tenant.clients["viewer"].post("/api/v1/alert-rules/", rule, format="json").status_code == 403
    created = tenant.clients["member"].post("/api/v1/alert-rules/", rule, format="json")
    assert created.status_code == 201 and created.json()["recipients"] == ["oncall@acme.example"]
    rid = created.json()["id"]
    assert tenant.clients["viewer"].get(f"/api/v1/alert-rules/{rid}/").json()["threshold"] == 50
    patched = tenant.clients["member"].patch(f"/api/v1/alert-rules/{rid}/", {"enabled": False}, format="json")
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert tenant.clients["viewer"].patch(f"/api/v1/alert-rules/{rid}/", {"enabled": True},
                                          format="json").status_code == 403
    # platform kinds and another tenant's instance are refused
    platform = tenant.owner.post("/api/v1/alert-rules/", rule | {"kind": "node_down"}, format="json")
    assert platform.status_code == 400
    foreign = tenant.owner.post("/api/v1/alert-rules/", rule | {"instance": theirs["id"]}, format="json")
    assert foreign.status_code == 400 and foreign.json()["error"]["details"]["fields"][0]["field"] == "instance"
    assert other_tenant.owner.get(f"/api/v1/alert-rules/{rid}/").status_code == 404
    assert other_tenant.owner.delete(f"/api/v1/alert-rules/{rid}/").status_code == 404
    assert tenant.owner.delete(f"/api/v1/alert-rules/{rid}/").status_code == 204
    assert not AlertRule.objects.filter(pk=rid).exists()


def test_alert_history_and_contacts(tenant, other_tenant) -> None:
    inst = create_instance(tenant.owner, "prod")
    rule = AlertRule.objects.create(instance_id=inst["id"], name="dlq", kind="dlq_messages", threshold=0)
    now = timezone.now()
    Alert.objects.create(rule=rule, instance_id=inst["id"], subject="group:billing", kind="dlq_messages",
                         threshold=0, value=3, peak_value=3, last_value=3, fired_at=now, last_notified_at=now)
    listed = tenant.clients["viewer"].get("/api/v1/alerts/", {"status": "firing"}).json()
    items = listed["results"] if isinstance(listed, dict) else listed
    assert [(a["rule_name"], a["subject"], a["value"]) for a in items] == [("dlq", "group:billing", 3)]
    other = other_tenant.owner.get("/api/v1/alerts/").json()
    assert (other["results"] if isinstance(other, dict) else other) == []

    assert tenant.clients["member"].post("/api/v1/alert-contacts/", {"email": "a@acme.example"},
                                         format="json").status_code == 403
    made = tenant.clients["admin"].post("/api/v1/alert-contacts/", {"email": "OnCall@acme.example"}, format="json")
    assert made.status_code == 201 and made.json()["email"] == "oncall@acme.example"
    dup = tenant.clients["admin"].post("/api/v1/alert-contacts/", {"email": "oncall@acme.example"}, format="json")
    assert dup.status_code == 400
    assert other_tenant.owner.delete(f"/api/v1/alert-contacts/{made.json()['id']}/").status_code == 404
