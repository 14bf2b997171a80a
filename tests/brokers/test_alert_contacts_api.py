"""Alert contacts through the REST API: admins create, edit (PATCH) and delete them, every change is
audited, members and viewers only read, another organisation's contact answers 404."""
from __future__ import annotations

from typing import Any

import pytest

from brokers.models import AlertContact
from tenants.models import AuditLog

pytestmark = pytest.mark.django_db

URL = "/api/v1/alert-contacts/"


def test_admins_edit_contacts_with_an_audit_entry_others_read_or_404(tenant: Any, other_tenant: Any) -> None:
    admin = tenant.clients["admin"]
    created = admin.post(URL, {"email": "Oncall@Acme.example", "name": "On call"}, format="json")
    assert created.status_code == 201, created.content
    other = admin.post(URL, {"email": "ops@acme.example"}, format="json").json()
    contact_url = f"{URL}{created.json()['id']}/"

    changed = admin.patch(contact_url, {"email": "Pager@Acme.example", "name": "Pager"}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["email"] == "pager@acme.example" and changed.json()["name"] == "Pager"
    entry = AuditLog.objects.get(object_type="alert_contact", action="update")
    assert entry.actor == tenant.users["admin"] and entry.organisation == tenant.organisation
    assert entry.before == {"email": "oncall@acme.example", "name": "On call"}
    assert entry.after == {"email": "pager@acme.example", "name": "Pager"}

    # The address stays unique within the organisation; the error names the field.
    taken = admin.patch(contact_url, {"email": other["email"]}, format="json")
    assert taken.status_code == 400
    assert taken.json()["error"]["details"]["fields"][0]["field"] == "email"
    # An unchanged contact writes no audit entry.
    assert admin.patch(contact_url, {"name": "Pager"}, format="json").status_code == 200
    assert AuditLog.objects.filter(object_type="alert_contact", action="update").count() == 1

    for role in ("member", "viewer"):
        client = tenant.clients[role]
        assert client.get(contact_url).status_code == 200
        assert client.patch(contact_url, {"name": "x"}, format="json").status_code == 403
    assert other_tenant.owner.get(contact_url).status_code == 404
    assert other_tenant.owner.patch(contact_url, {"name": "x"}, format="json").status_code == 404
    assert AlertContact.objects.get(pk=created.json()["id"]).name == "Pager"
