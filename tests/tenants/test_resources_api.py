"""Instances, topics, groups, credentials and ACL rules: good and bad input, quotas, secrets,
audit entries and fleet signals."""
from __future__ import annotations

import logging

import pytest

from tenants import crypto
from tenants.models import AuditLog, CredentialSecret, Instance, Organisation, Plan
from tenants.signals import instance_created, instance_state_changed
from tests.conftest import create_instance

pytestmark = pytest.mark.django_db


def test_instance_create_defaults_from_plan(tenant) -> None:
    body = create_instance(tenant.owner, "prod", description="main")
    plan = Plan.objects.get(code="standard")
    assert body["status"] == "provisioning" and body["endpoint"] == ""
    assert body["namespace"].startswith("mq-") and len(body["namespace"]) == 19
    assert body["send_tps"] == plan.send_tps and body["retention_hours"] == plan.retention_hours
    again = tenant.owner.get(f"/api/v1/instances/{body['id']}/").json()
    assert again["namespace"] == body["namespace"]


def test_instance_validation_and_duplicates(tenant) -> None:
    c = tenant.owner
    bad = c.post("/api/v1/instances/", {"name": "bad name!"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["details"]["fields"][0]["field"] == "name"
    create_instance(c, "prod")
    dup = c.post("/api/v1/instances/", {"name": "prod"}, format="json")
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "already_exists"
    over = c.post("/api/v1/instances/", {"name": "big", "send_tps": 10**6}, format="json")
    assert over.status_code == 409
    assert over.json()["error"]["details"] == {"quota": "send_tps", "limit": 2000, "current": 10**6}


def test_instance_update_and_delete_marks_deleting(tenant) -> None:
    c = tenant.owner
    inst = create_instance(c, "prod")
    topic = c.post("/api/v1/topics/", {"instance": inst["id"], "name": "t", "retention_hours": 100}, format="json").json()
    patched = c.patch(f"/api/v1/instances/{inst['id']}/", {"retention_hours": 24, "description": "x"}, format="json")
    assert patched.status_code == 200 and patched.json()["retention_hours"] == 24
    assert c.get(f"/api/v1/topics/{topic['id']}/").json()["retention_hours"] == 24
    deleted = c.delete(f"/api/v1/instances/{inst['id']}/")
    assert deleted.status_code == 202 and deleted.json()["status"] == "deleting"
    blocked = c.post("/api/v1/topics/", {"instance": inst["id"], "name": "t2"}, format="json")
    assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "instance_deleting"
    # the name is free again, the namespace is not reused
    new = create_instance(c, "prod")
    assert new["namespace"] != inst["namespace"]


def test_instance_quota(make_tenant) -> None:
    free = make_tenant("tiny", plan="free")
    create_instance(free.owner, "one")
    response = free.owner.post("/api/v1/instances/", {"name": "two"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "quota_exceeded", "message": response.json()["error"]["message"],
        "details": {"quota": "max_instances", "limit": 1, "current": 1},
    }


def test_organisation_budget(tenant) -> None:
    # standard: 2000 TPS per instance, 5000 across the organisation, 5 instances
    c = tenant.owner
    create_instance(c, "a")
    create_instance(c, "b")
    third = c.post("/api/v1/instances/", {"name": "c"}, format="json")
    assert third.status_code == 409
    assert third.json()["error"]["details"] == {"quota": "org_send_tps_budget", "limit": 5000, "current": 4000,
                                                "requested": 2000}
    create_instance(c, "c", send_tps=1000)
    bump = c.patch(f"/api/v1/instances/{Instance.objects.get(name='c').pk}/", {"send_tps": 1500}, format="json")
    assert bump.status_code == 409 and bump.json()["error"]["details"]["quota"] == "org_send_tps_budget"


def test_topics_of_each_type_and_validation(tenant) -> None:
    c = tenant.owner
    inst = create_instance(c)
    for kind in ("NORMAL", "FIFO", "DELAY", "TRANSACTION"):
        r = c.post("/api/v1/topics/", {"instance": inst["id"], "name": f"t-{kind.lower()}", "message_type": kind}, format="json")
        assert r.status_code == 201 and r.json()["message_type"] == kind and r.json()["queue_count"] == 8
    for payload, field in [
        ({"name": "%RETRY%x"}, "name"), ({"name": "a" * 128}, "name"), ({"name": "ok", "queue_count": 65}, "queue_count"),
        ({"name": "ok", "queue_count": 0}, "queue_count"), ({"name": "ok", "message_type": "WEIRD"}, "message_type"),
    ]:
        r = c.post("/api/v1/topics/", {"instance": inst["id"], **payload}, format="json")
        assert r.status_code == 400, payload
        assert field in [f["field"] for f in r.json()["error"]["details"]["fields"]]
    over = c.post("/api/v1/topics/", {"instance": inst["id"], "name": "long", "retention_hours": 10_000}, format="json")
    assert over.status_code == 409 and over.json()["error"]["details"]["quota"] == "retention_hours"
    dup = c.post("/api/v1/topics/", {"instance": inst["id"], "name": "t-fifo"}, format="json")
    assert dup.status_code == 409
    listed = c.get(f"/api/v1/topics/?instance={inst['id']}&limit=2").json()
    assert listed["count"] == 4 and len(listed["results"]) == 2
    tid = listed["results"][0]["id"]
    assert c.patch(f"/api/v1/topics/{tid}/", {"queue_count": 16}, format="json").json()["queue_count"] == 16
    shrink = c.patch(f"/api/v1/topics/{tid}/", {"queue_count": 4}, format="json")
    assert shrink.status_code == 400 and shrink.json()["error"]["details"]["fields"][0]["field"] == "queue_count"
    assert c.delete(f"/api/v1/topics/{tid}/").status_code == 204


def test_topic_and_group_quotas(make_tenant) -> None:
    t = make_tenant("tiny", plan="free")
    inst = create_instance(t.owner)
    for i in range(10):
        assert t.owner.post("/api/v1/topics/", {"instance": inst["id"], "name": f"t{i}"}, format="json").status_code == 201
        assert t.owner.post("/api/v1/groups/", {"instance": inst["id"], "name": f"g{i}"}, format="json").status_code == 201
    topic = t.owner.post("/api/v1/topics/", {"instance": inst["id"], "name": "t10"}, format="json")
    group = t.owner.post("/api/v1/groups/", {"instance": inst["id"], "name": "g10"}, format="json")
    assert topic.json()["error"]["details"] == {"quota": "topics_per_instance", "limit": 10, "current": 10}
    assert group.json()["error"]["details"] == {"quota": "groups_per_instance", "limit": 10, "current": 10}


def test_groups(tenant) -> None:
    c = tenant.owner
    inst = create_instance(c)
    g = c.post("/api/v1/groups/", {"instance": inst["id"], "name": "billing", "delivery": "broadcast"}, format="json")
    assert g.status_code == 201
    body = g.json()
    assert (body["max_delivery_attempts"], body["retry_initial_backoff_ms"], body["retry_max_backoff_ms"],
            body["retry_backoff_multiplier"]) == (16, 1000, 7_200_000, 2.0)
    for payload, field in [({"max_delivery_attempts": 0}, "max_delivery_attempts"),
                           ({"max_delivery_attempts": 1001}, "max_delivery_attempts"),
                           ({"delivery": "shout"}, "delivery"), ({"name": "%DLQ%x"}, "name"),
                           ({"retry_initial_backoff_ms": 5000, "retry_max_backoff_ms": 1000}, "retry_max_backoff_ms")]:
        r = c.post("/api/v1/groups/", {"instance": inst["id"], "name": "g2", **payload}, format="json")
        assert r.status_code == 400, (payload, r.content)
        assert field in [f["field"] for f in r.json()["error"]["details"]["fields"]]
    patched = c.patch(f"/api/v1/groups/{body['id']}/", {"fifo": True, "max_delivery_attempts": 3}, format="json")
    assert patched.json()["fifo"] is True and patched.json()["max_delivery_attempts"] == 3


def test_credential_secret_shown_once_and_encrypted(tenant, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    c = tenant.owner
    inst = create_instance(c)
    created = c.post("/api/v1/credentials/", {"instance": inst["id"], "description": "app"}, format="json")
    assert created.status_code == 201
    body = created.json()
    secret, access_key = body["secret_key"], body["access_key"]
    assert len(access_key) == 20 and access_key.isupper() or access_key.isalnum()
    assert len(secret) == 40
    stored = CredentialSecret.objects.get(credential_id=body["id"])
    assert secret not in stored.ciphertext and crypto.decrypt(stored.ciphertext) == secret

    rotated = c.post(f"/api/v1/credentials/{body['id']}/rotate/")
    assert rotated.status_code == 201
    new_secret = rotated.json()["secret_key"]
    assert new_secret != secret
    third = c.post(f"/api/v1/credentials/{body['id']}/rotate/")
    assert third.status_code == 409 and third.json()["error"]["code"] == "secret_limit"

    detail = c.get(f"/api/v1/credentials/{body['id']}/")
    listing = c.get("/api/v1/credentials/")
    audit = c.get("/api/v1/audit-log/?limit=500")
    for text in (detail.content.decode(), listing.content.decode(), audit.content.decode(), caplog.text):
        assert secret not in text and new_secret not in text
    for row in AuditLog.objects.all():
        assert secret not in f"{row.before}{row.after}{row.object_repr}"
        assert new_secret not in f"{row.before}{row.after}{row.object_repr}"
    assert len([s for s in detail.json()["secrets"] if s["revoked_at"] is None]) == 2

    old_id = detail.json()["secrets"][0]["id"]
    revoked = c.post(f"/api/v1/credentials/{body['id']}/revoke-secret/", {"secret_id": old_id}, format="json")
    assert revoked.status_code == 200
    last_id = detail.json()["secrets"][1]["id"]
    last = c.post(f"/api/v1/credentials/{body['id']}/revoke-secret/", {"secret_id": last_id}, format="json")
    assert last.status_code == 409 and last.json()["error"]["code"] == "last_secret"
    unknown = c.post(f"/api/v1/credentials/{body['id']}/revoke-secret/", {"secret_id": 999999}, format="json")
    assert unknown.status_code == 400

    whole = c.post(f"/api/v1/credentials/{body['id']}/revoke/")
    assert whole.status_code == 200 and whole.json()["revoked_at"] and whole.json()["enabled"] is False
    assert c.post(f"/api/v1/credentials/{body['id']}/rotate/").status_code == 409
    assert c.patch(f"/api/v1/credentials/{body['id']}/", {"enabled": True}, format="json").status_code == 409


def test_credential_quota(make_tenant) -> None:
    t = make_tenant("tiny", plan="free")
    inst = create_instance(t.owner)
    ids = [t.owner.post("/api/v1/credentials/", {"instance": inst["id"]}, format="json").json()["id"] for _ in range(5)]
    over = t.owner.post("/api/v1/credentials/", {"instance": inst["id"]}, format="json")
    assert over.status_code == 409 and over.json()["error"]["details"]["quota"] == "credentials_per_instance"
    t.owner.post(f"/api/v1/credentials/{ids[0]}/revoke/")
    assert t.owner.post("/api/v1/credentials/", {"instance": inst["id"]}, format="json").status_code == 201


def test_acl_rules(tenant) -> None:
    c = tenant.owner
    inst = create_instance(c)
    cred = c.post("/api/v1/credentials/", {"instance": inst["id"]}, format="json").json()
    base = {"credential": cred["id"], "resource_type": "topic", "pattern": "orders-*", "actions": ["pub", "sub"]}
    ok = c.post("/api/v1/acl-rules/", {**base, "source_cidrs": ["10.0.0.0/8"]}, format="json")
    assert ok.status_code == 201 and ok.json()["instance"] == inst["id"]
    for payload, field in [({"pattern": "or*ders"}, "pattern"), ({"source_cidrs": ["10.0.0.1/8"]}, "source_cidrs.0"),
                           ({"actions": []}, "actions"), ({"actions": ["fly"]}, "actions.0"),
                           ({"resource_type": "group", "actions": ["pub"]}, "actions"), ({"effect": "maybe"}, "effect")]:
        r = c.post("/api/v1/acl-rules/", {**base, **payload}, format="json")
        assert r.status_code == 400, (payload, r.content)
        assert field in [f["field"] for f in r.json()["error"]["details"]["fields"]], r.json()
    deny = c.post("/api/v1/acl-rules/", {**base, "pattern": "orders-secret", "actions": ["pub"], "effect": "deny"},
                  format="json").json()
    preview = c.post("/api/v1/acl-rules/evaluate/", {"credential": cred["id"], "resource_type": "topic",
                                                     "name": "orders-secret", "action": "pub", "source_ip": "10.1.1.1"},
                     format="json")
    assert preview.status_code == 200 and preview.json() == {"allowed": False, "matched_rules": [ok.json()["id"], deny["id"]]}
    preview = c.post("/api/v1/acl-rules/evaluate/", {"credential": cred["id"], "resource_type": "topic",
                                                     "name": "orders-eu", "action": "sub", "source_ip": "10.1.1.1"},
                     format="json")
    assert preview.json()["allowed"] is True
    patched = c.patch(f"/api/v1/acl-rules/{deny['id']}/", {"effect": "allow"}, format="json")
    assert patched.status_code == 200 and patched.json()["effect"] == "allow"
    assert c.get(f"/api/v1/acl-rules/?credential={cred['id']}").json()["count"] == 2
    assert c.delete(f"/api/v1/acl-rules/{deny['id']}/").status_code == 204


def test_every_mutation_is_audited(tenant, resources) -> None:
    c = tenant.owner
    ids = {k: v["id"] for k, v in resources.items()}
    c.patch(f"/api/v1/topics/{ids['topic']}/", {"description": "d"}, format="json")
    c.patch(f"/api/v1/groups/{ids['group']}/", {"description": "d"}, format="json")
    c.patch(f"/api/v1/acl-rules/{ids['acl_rule']}/", {"description": "d"}, format="json")
    c.patch(f"/api/v1/credentials/{ids['credential']}/", {"description": "d"}, format="json")
    c.patch(f"/api/v1/instances/{ids['instance']}/", {"description": "d"}, format="json")
    c.delete(f"/api/v1/acl-rules/{ids['acl_rule']}/")
    c.delete(f"/api/v1/topics/{ids['topic']}/")
    c.delete(f"/api/v1/groups/{ids['group']}/")
    c.delete(f"/api/v1/credentials/{ids['credential']}/")
    c.delete(f"/api/v1/instances/{ids['instance']}/")
    entries = set(AuditLog.objects.filter(organisation=tenant.organisation).values_list("object_type", "action"))
    for kind in ("instance", "topic", "consumer_group", "credential", "acl_rule"):
        for action in ("create", "update", "delete"):
            assert (kind, action) in entries, (kind, action)
    row = AuditLog.objects.filter(object_type="topic", action="update").first()
    assert row.actor == tenant.users["owner"] and row.source_ip == "127.0.0.1"
    assert row.before["description"] == "" and row.after["description"] == "d"
    # the API filters
    only = c.get("/api/v1/audit-log/?object_type=topic&action=delete").json()
    assert only["count"] == 1 and only["results"][0]["object_id"] == str(ids["topic"])
    future = c.get("/api/v1/audit-log/?created_after=2999-01-01T00:00:00Z").json()
    assert future["count"] == 0
    assert c.post("/api/v1/audit-log/", {}, format="json").status_code == 405


def test_fleet_signals_after_commit(tenant, django_capture_on_commit_callbacks) -> None:
    changed: list[int] = []
    created: list[int] = []

    def on_changed(sender, instance_id, **kw):
        changed.append(instance_id)

    def on_created(sender, instance_id, **kw):
        created.append(instance_id)

    instance_state_changed.connect(on_changed)
    instance_created.connect(on_created)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            inst = create_instance(tenant.owner)
        assert created == [inst["id"]] and changed == [inst["id"]]
        with django_capture_on_commit_callbacks(execute=True):
            tenant.owner.post("/api/v1/topics/", {"instance": inst["id"], "name": "t"}, format="json")
            tenant.owner.post("/api/v1/credentials/", {"instance": inst["id"]}, format="json")
        assert changed == [inst["id"]] * 3
        with django_capture_on_commit_callbacks(execute=True):
            bad = tenant.owner.post("/api/v1/topics/", {"instance": inst["id"], "name": "t"}, format="json")
        assert bad.status_code == 409 and changed == [inst["id"]] * 3  # failed change: no signal
    finally:
        instance_state_changed.disconnect(on_changed)
        instance_created.disconnect(on_created)


def test_plans_and_assignment(tenant, make_user) -> None:
    from tests.conftest import token_client

    plans = tenant.owner.get("/api/v1/plans/").json()
    assert [p["code"] for p in plans] == ["free", "standard", "dedicated"]
    org_id = tenant.organisation.pk
    denied = tenant.owner.post(f"/api/v1/organisations/{org_id}/plan/", {"plan": "dedicated"}, format="json")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "plan_not_self_service"
    assert tenant.clients["admin"].post(f"/api/v1/organisations/{org_id}/plan/", {"plan": "free"}, format="json").status_code == 403
    assert tenant.owner.post("/api/v1/plans/dedicated/assign/", {"organisation": org_id}, format="json").status_code == 403
    operator = token_client(make_user("ops@platform.example", is_staff=True))
    ok = operator.post("/api/v1/plans/dedicated/assign/", {"organisation": org_id}, format="json")
    assert ok.status_code == 200 and ok.json()["plan"] == "dedicated"
    create_instance(tenant.owner, "a")
    create_instance(tenant.owner, "b")
    down = tenant.owner.post(f"/api/v1/organisations/{org_id}/plan/", {"plan": "free"}, format="json")
    assert down.status_code == 409 and down.json()["error"]["code"] == "quota_exceeded"
    assert Organisation.objects.get(pk=org_id).plan.code == "dedicated"
    assert AuditLog.objects.filter(object_type="organisation", action="plan_assign").count() == 1


def test_plans_ensure_defaults_is_idempotent(plans) -> None:
    from tenants.services import plans_ensure_defaults

    Plan.objects.filter(code="free").update(max_instances=3)
    again = plans_ensure_defaults()
    assert [p.code for p in again] == ["free", "standard", "dedicated"]
    assert Plan.objects.count() == 3 and Plan.objects.get(code="free").max_instances == 3


@pytest.mark.parametrize("path", ["/api/v1/topics/?instance={big}", "/api/v1/instances/{big}/", "/api/v1/groups/{big}/"])
def test_ids_beyond_the_database_range_are_a_validation_error(tenant, path) -> None:
    # Found by the schema fuzzer: SQLite's driver raises OverflowError, PostgreSQL DataError.
    # A detail URL answers 404 or 400; a list filter may also answer an empty page. Never a 5xx.
    response = tenant.owner.get(path.format(big=2**70))
    assert response.status_code in (200, 400, 404)
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "validation_error"
    if response.status_code == 200:
        assert "?" in path and response.json()["count"] == 0
