"""Cross-tenant and role matrix: every object type x every verb, from another organisation (all
roles) and from each role of the owning organisation."""
from __future__ import annotations

import pytest

from tenants.models import AuditLog, Invitation, Membership

pytestmark = pytest.mark.django_db

# object type -> (collection, harmless PATCH payload, minimum role to write)
TYPES = {
    "instance": ("instances", {"description": "x"}, "member"),
    "topic": ("topics", {"description": "x"}, "member"),
    "group": ("groups", {"description": "x"}, "member"),
    "credential": ("credentials", {"description": "x"}, "admin"),
    "acl_rule": ("acl-rules", {"description": "x"}, "admin"),
}
RANK = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}
ROLES = list(RANK)


def resources_org(resources: dict) -> int:
    from tenants.models import Instance

    return Instance.objects.get(pk=resources["instance"]["id"]).organisation_id


def _urls(resources: dict, kind: str) -> tuple[str, str]:
    collection = TYPES[kind][0]
    return f"/api/v1/{collection}/", f"/api/v1/{collection}/{resources[kind]['id']}/"


@pytest.mark.parametrize("role", ROLES)
def test_other_tenant_sees_nothing(resources, other_tenant, role) -> None:
    client = other_tenant.clients[role]
    for kind, (_, payload, _) in TYPES.items():
        collection, detail = _urls(resources, kind)
        assert client.get(collection).json()["count"] == 0, kind
        for method, body in (("get", None), ("patch", payload), ("delete", None)):
            response = getattr(client, method)(detail, body, format="json")
            assert response.status_code == 404, (kind, method, response.status_code)
            assert response.json()["error"]["code"] == "not_found"
    cred = resources["credential"]["id"]
    for action in ("rotate", "revoke", "revoke-secret"):
        assert client.post(f"/api/v1/credentials/{cred}/{action}/", {"secret_id": 1}, format="json").status_code == 404
    # references to foreign objects in bodies and filters look exactly like missing ones
    inst = resources["instance"]["id"]
    r = client.post("/api/v1/topics/", {"instance": inst, "name": "stolen"}, format="json")
    missing = client.post("/api/v1/topics/", {"instance": 987654, "name": "stolen"}, format="json")
    assert r.status_code == missing.status_code == (403 if role == "viewer" else 400)
    if role != "viewer":
        [field] = r.json()["error"]["details"]["fields"]
        assert (field["field"], field["code"]) == ("instance", "does_not_exist")
    assert client.get(f"/api/v1/topics/?instance={inst}").json()["count"] == 0
    assert client.post("/api/v1/acl-rules/evaluate/", {"credential": cred, "resource_type": "topic", "name": "x",
                                                       "action": "pub"}, format="json").status_code == 400
    # nor the owning organisation's members, invitations, audit entries
    if RANK[role] >= RANK["admin"]:
        foreign = set(AuditLog.objects.filter(organisation=resources_org(resources)).values_list("id", flat=True))
        seen = {e["id"] for e in client.get("/api/v1/audit-log/?limit=1000").json()["results"]}
        assert foreign and not seen & foreign
        assert client.get(f"/api/v1/audit-log/{min(foreign)}/").status_code == 404
    owner_membership = Membership.objects.get(user__email="owner@acme.example")
    assert client.get(f"/api/v1/members/{owner_membership.pk}/").status_code == 404
    assert client.patch(f"/api/v1/members/{owner_membership.pk}/", {"role": "viewer"}, format="json").status_code == 404
    assert client.delete(f"/api/v1/members/{owner_membership.pk}/").status_code == 404
    assert client.get(f"/api/v1/organisations/{owner_membership.organisation_id}/").status_code == 404


def test_selecting_a_foreign_organisation_is_not_found(tenant, other_tenant) -> None:
    from tests.conftest import token_client

    client = token_client(other_tenant.users["owner"])  # no default X-Organisation header
    assert client.get("/api/v1/instances/").status_code == 200  # single membership: implied
    for value in (str(tenant.organisation.pk), tenant.organisation.slug, "no-such-org", "999999"):
        response = client.get("/api/v1/instances/", HTTP_X_ORGANISATION=value)
        assert response.status_code == 404, value
        assert response.json()["error"]["code"] == "not_found"
        assert client.get(f"/api/v1/instances/?org={value}").status_code == 404


def test_several_memberships_need_a_selection(tenant, other_tenant, resources) -> None:
    from tests.conftest import token_client

    user = other_tenant.users["owner"]
    Membership.objects.create(organisation=tenant.organisation, user=user, role="viewer")
    client = token_client(user)  # no X-Organisation header
    response = client.get("/api/v1/instances/")
    assert response.status_code == 400 and response.json()["error"]["code"] == "organisation_required"
    assert set(response.json()["error"]["details"]["organisations"]) == {"acme", "globex"}
    assert client.get("/api/v1/instances/?org=acme").json()["count"] == 1
    assert client.get("/api/v1/instances/", HTTP_X_ORGANISATION="globex").json()["count"] == 0
    me = client.get("/api/v1/auth/me/").json()
    assert {(o["slug"], o["role"]) for o in me["organisations"]} == {("acme", "viewer"), ("globex", "owner")}


@pytest.mark.parametrize("role", ROLES)
def test_role_rules_on_resources(tenant, resources, role) -> None:
    client = tenant.clients[role]
    for kind, (_, payload, write_role) in TYPES.items():
        collection, detail = _urls(resources, kind)
        assert client.get(collection).status_code == 200
        assert client.get(detail).status_code == 200
        may_write = RANK[role] >= RANK[write_role]
        patched = client.patch(detail, payload, format="json")
        assert patched.status_code == (200 if may_write else 403), (kind, role, patched.content)
        if not may_write:
            assert patched.json()["error"]["code"] == "permission_denied"
            assert client.delete(detail).status_code == 403
    inst = resources["instance"]["id"]
    cred = resources["credential"]["id"]
    topic = client.post("/api/v1/topics/", {"instance": inst, "name": f"by-{role}"}, format="json")
    assert topic.status_code == (201 if RANK[role] >= 1 else 403)
    new_cred = client.post("/api/v1/credentials/", {"instance": inst}, format="json")
    assert new_cred.status_code == (201 if RANK[role] >= 2 else 403)
    rotate = client.post(f"/api/v1/credentials/{cred}/rotate/")
    assert rotate.status_code == (201 if RANK[role] >= 2 else 403)
    rule = client.post("/api/v1/acl-rules/", {"credential": cred, "resource_type": "group", "pattern": "*",
                                              "actions": ["sub"]}, format="json")
    assert rule.status_code == (201 if RANK[role] >= 2 else 403)
    preview = client.post("/api/v1/acl-rules/evaluate/", {"credential": cred, "resource_type": "topic",
                                                          "name": "orders-x", "action": "pub"}, format="json")
    assert preview.status_code == 200 and preview.json()["allowed"] is True
    audit = client.get("/api/v1/audit-log/")
    assert audit.status_code == (200 if RANK[role] >= 2 else 403)
    invitations = client.get("/api/v1/invitations/")
    assert invitations.status_code == (200 if RANK[role] >= 2 else 403)


def test_member_management_rules(tenant) -> None:
    members = {m.user.email.split("@")[0]: m.pk for m in Membership.objects.filter(organisation=tenant.organisation)}
    viewer_client, member_client, admin_client = (tenant.clients[r] for r in ("viewer", "member", "admin"))
    assert viewer_client.get("/api/v1/members/").json()["count"] == 4
    assert member_client.patch(f"/api/v1/members/{members['viewer']}/", {"role": "admin"}, format="json").status_code == 403
    assert admin_client.patch(f"/api/v1/members/{members['viewer']}/", {"role": "member"}, format="json").status_code == 200
    assert admin_client.patch(f"/api/v1/members/{members['viewer']}/", {"role": "owner"}, format="json").status_code == 403
    assert admin_client.patch(f"/api/v1/members/{members['owner']}/", {"role": "viewer"}, format="json").status_code == 403
    assert admin_client.delete(f"/api/v1/members/{members['owner']}/").status_code == 403
    assert member_client.delete(f"/api/v1/members/{members['viewer']}/").status_code == 403
    last = tenant.owner.patch(f"/api/v1/members/{members['owner']}/", {"role": "admin"}, format="json")
    assert last.status_code == 409 and last.json()["error"]["code"] == "last_owner"
    assert tenant.owner.delete(f"/api/v1/members/{members['owner']}/").status_code == 409
    assert tenant.owner.patch(f"/api/v1/members/{members['admin']}/", {"role": "owner"}, format="json").status_code == 200
    assert viewer_client.delete(f"/api/v1/members/{members['viewer']}/").status_code == 204  # leaving
    assert viewer_client.get("/api/v1/instances/").status_code == 404
    assert Invitation.objects.count() == 0


def test_organisation_endpoints(tenant, other_tenant) -> None:
    org = tenant.organisation.pk
    listed = tenant.clients["viewer"].get("/api/v1/organisations/").json()["results"]
    assert [(o["slug"], o["role"]) for o in listed] == [("acme", "viewer")]
    assert tenant.clients["member"].patch(f"/api/v1/organisations/{org}/", {"name": "N"}, format="json").status_code == 403
    renamed = tenant.clients["admin"].patch(f"/api/v1/organisations/{org}/", {"name": "Acme Inc"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["name"] == "Acme Inc"
    assert tenant.clients["admin"].delete(f"/api/v1/organisations/{org}/").status_code == 403
    created = tenant.clients["viewer"].post("/api/v1/organisations/", {"name": "Side project"}, format="json")
    assert created.status_code == 201 and created.json()["role"] == "owner"
    blank = tenant.owner.post("/api/v1/organisations/", {"name": ""}, format="json")
    assert blank.status_code == 400 and blank.json()["error"]["details"]["fields"][0]["field"] == "name"
    from tests.conftest import create_instance

    create_instance(tenant.owner)
    busy = tenant.owner.delete(f"/api/v1/organisations/{org}/")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "organisation_not_empty"
    side = created.json()["id"]
    assert tenant.clients["viewer"].delete(f"/api/v1/organisations/{side}/").status_code == 204
