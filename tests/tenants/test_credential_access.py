"""A credential can start with an access preset: the matching ACL rules exist (audited) and the
ACL evaluation answers accordingly; unknown presets are refused by name."""
from __future__ import annotations

import pytest

from tenants.models import AclRule, AuditLog
from tests.conftest import create_instance

pytestmark = pytest.mark.django_db


def _evaluate(client, credential: int, resource: str, name: str, action: str) -> bool:
    response = client.post("/api/v1/acl-rules/evaluate/", {
        "credential": credential, "resource_type": resource, "name": name, "action": action}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["allowed"]


def test_presets_create_their_rules_and_none_stays_deny_all(tenant) -> None:
    c = tenant.owner
    inst = create_instance(c, "prod")
    made = {}
    for access in ("none", "publish", "publish_subscribe"):
        response = c.post("/api/v1/credentials/", {"instance": inst["id"], "access": access}, format="json")
        assert response.status_code == 201, response.content
        assert "access" not in response.json() and response.json()["secret_key"]
        made[access] = response.json()["id"]
    assert not AclRule.objects.filter(credential_id=made["none"]).exists()
    assert not _evaluate(c, made["none"], "topic", "orders", "pub")
    assert _evaluate(c, made["publish"], "topic", "orders", "pub")
    assert not _evaluate(c, made["publish"], "topic", "orders", "sub")
    assert _evaluate(c, made["publish_subscribe"], "topic", "orders", "sub")
    assert _evaluate(c, made["publish_subscribe"], "group", "billing", "sub")
    assert AuditLog.objects.filter(object_type="acl_rule", action="create").count() == 3


def test_an_unknown_preset_is_refused_by_name(tenant) -> None:
    inst = create_instance(tenant.owner, "prod")
    response = tenant.owner.post("/api/v1/credentials/", {"instance": inst["id"], "access": "root"}, format="json")
    assert response.status_code == 400
    assert "access" in str(response.json()["error"])
