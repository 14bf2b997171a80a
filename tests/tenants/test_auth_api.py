"""Sign-up, e-mail confirmation, login/logout, password reset, invitations, API tokens, throttles."""
from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from tenants.models import ApiToken, AuditLog, Membership, Organisation
from tests.smtp import Inbox, Mail

pytestmark = pytest.mark.django_db
PASSWORD = "a perfectly long passphrase"


def _link(message: Mail) -> str:
    match = re.search(r"https?://\S+", message.body)
    assert match, message.body
    return match.group(0)


def _path(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def signup(client: APIClient, email: str = "ada@example.com", org: str = "Analytical Engines") -> dict:
    response = client.post("/api/v1/auth/signup/", {"organisation_name": org, "email": email, "password": PASSWORD},
                           format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_signup_confirm_by_link_then_login(anon: APIClient, plans, settings, smtp: Inbox) -> None:
    settings.MQ_PUBLIC_URL = "https://mq.example.com"
    body = signup(anon)
    assert body["email"] == "ada@example.com"
    org = Organisation.objects.get(slug=body["organisation"])
    assert org.plan.code == "free"
    assert Membership.objects.get(organisation=org).role == "owner"

    login = anon.post("/api/v1/auth/login/", {"email": "ada@example.com", "password": PASSWORD}, format="json")
    assert login.status_code == 403
    assert login.json()["error"]["code"] == "email_not_confirmed"

    assert len(smtp.outbox) == 1
    link = _link(smtp.outbox[0])
    assert link.startswith("https://mq.example.com/accounts/confirm-email/")
    page = Client().get(_path(link))
    assert page.status_code == 200 and b"E-mail confirmed" in page.content

    login = anon.post("/api/v1/auth/login/", {"email": "ADA@example.com", "password": PASSWORD}, format="json")
    assert login.status_code == 200, login.content
    assert login.json()["organisations"][0]["role"] == "owner"
    me = anon.get("/api/v1/auth/me/")
    assert me.status_code == 200 and me.json()["email"] == "ada@example.com"
    assert anon.post("/api/v1/auth/logout/").status_code == 204
    assert anon.get("/api/v1/auth/me/").status_code in (401, 403)


def test_confirm_email_api_and_bad_tokens(anon: APIClient, plans, smtp: Inbox) -> None:
    signup(anon)
    token = _path(_link(smtp.outbox[0])).rstrip("/").split("/")[-1]
    bad = anon.post("/api/v1/auth/confirm-email/", {"token": token + "x"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_token"
    assert Client().get("/accounts/confirm-email/garbage/").status_code == 400
    ok = anon.post("/api/v1/auth/confirm-email/", {"token": token}, format="json")
    assert ok.status_code == 200


def test_confirmation_link_expires(anon: APIClient, plans, monkeypatch, smtp: Inbox) -> None:
    import datetime as dt

    from tenants.services import accounts

    signup(anon)
    token = _path(_link(smtp.outbox[0])).rstrip("/").split("/")[-1]
    monkeypatch.setattr(accounts, "CONFIRM_MAX_AGE", dt.timedelta(seconds=-1))
    response = anon.post("/api/v1/auth/confirm-email/", {"token": token}, format="json")
    assert response.status_code == 400 and "expired" in response.json()["error"]["message"]


@pytest.mark.parametrize(("payload", "field"), [
    ({"organisation_name": "x", "email": "not-an-email", "password": PASSWORD}, "email"),
    ({"organisation_name": "x", "email": "a@b.example", "password": "short"}, "password"),
    ({"organisation_name": "x", "email": "a@b.example", "password": "1234567890123"}, "password"),
    ({"email": "a@b.example", "password": PASSWORD}, "organisation_name"),
])
def test_signup_validation_names_the_field(anon: APIClient, plans, payload: dict, field: str) -> None:
    response = anon.post("/api/v1/auth/signup/", payload, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in [f["field"] for f in error["details"]["fields"]]
    assert all(f["reason"] for f in error["details"]["fields"])


def test_signup_duplicate_email(anon: APIClient, plans) -> None:
    signup(anon)
    response = anon.post("/api/v1/auth/signup/", {"organisation_name": "y", "email": "Ada@Example.com",
                                                  "password": PASSWORD}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "email_taken"


def test_login_wrong_password(anon: APIClient, make_user) -> None:
    make_user("bob@example.com", password=PASSWORD)
    response = anon.post("/api/v1/auth/login/", {"email": "bob@example.com", "password": "wrong"}, format="json")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_credentials"


def test_login_is_rate_limited(anon: APIClient, make_user) -> None:
    make_user("bob@example.com")
    codes = [anon.post("/api/v1/auth/login/", {"email": "bob@example.com", "password": "wrong"}, format="json").status_code
             for _ in range(12)]
    assert codes[:10] == [401] * 10
    assert codes[-1] == 429
    last = anon.post("/api/v1/auth/login/", {"email": "bob@example.com", "password": "x"}, format="json")
    assert last.json()["error"]["code"] == "throttled" and "Retry-After" in last


def test_signup_and_password_reset_are_rate_limited(anon: APIClient, plans) -> None:
    codes = [anon.post("/api/v1/auth/signup/", {"organisation_name": "o", "email": f"u{i}@example.com",
                                                "password": PASSWORD}, format="json").status_code for i in range(6)]
    assert codes == [201] * 5 + [429]
    codes = [anon.post("/api/v1/auth/password-reset/", {"email": "x@example.com"}, format="json").status_code
             for _ in range(6)]
    assert codes == [202] * 5 + [429]


def test_password_reset_flow(anon: APIClient, make_user, smtp: Inbox) -> None:
    make_user("carol@example.com")
    assert anon.post("/api/v1/auth/password-reset/", {"email": "nobody@example.com"}, format="json").status_code == 202
    assert len(smtp.outbox) == 0  # no account, no mail, same answer
    assert anon.post("/api/v1/auth/password-reset/", {"email": "carol@example.com"}, format="json").status_code == 202
    assert len(smtp.outbox) == 1
    link = _link(smtp.outbox[0])
    uid, token = _path(link).rstrip("/").split("/")[-2:]
    weak = anon.post("/api/v1/auth/password-reset/confirm/", {"uid": uid, "token": token, "password": "123"}, format="json")
    assert weak.status_code == 400 and weak.json()["error"]["details"]["fields"][0]["field"] == "password"
    ok = anon.post("/api/v1/auth/password-reset/confirm/", {"uid": uid, "token": token, "password": "brand new passphrase"},
                   format="json")
    assert ok.status_code == 200
    again = anon.post("/api/v1/auth/password-reset/confirm/", {"uid": uid, "token": token, "password": "another passphrase!"},
                      format="json")
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_token"  # single use
    login = anon.post("/api/v1/auth/login/", {"email": "carol@example.com", "password": "brand new passphrase"}, format="json")
    assert login.status_code == 200


def test_password_reset_page(make_user, smtp: Inbox) -> None:
    make_user("dave@example.com")
    APIClient().post("/api/v1/auth/password-reset/", {"email": "dave@example.com"}, format="json")
    path = _path(_link(smtp.outbox[0]))
    browser = Client()
    assert browser.get(path).status_code == 200
    assert browser.post(path, {"password": "page chosen passphrase"}).status_code == 200
    assert APIClient().post("/api/v1/auth/login/", {"email": "dave@example.com", "password": "page chosen passphrase"},
                            format="json").status_code == 200


def test_invitation_new_user(tenant, anon: APIClient, smtp: Inbox) -> None:
    response = tenant.clients["admin"].post("/api/v1/invitations/", {"email": "new@example.com", "role": "member"},
                                            format="json")
    assert response.status_code == 201, response.content
    assert response.json()["invited_by"] == "admin@acme.example"
    key = _path(_link(smtp.outbox[0])).rstrip("/").split("/")[-1]
    assert Client().get(f"/accounts/invitations/{key}/").status_code == 200
    accepted = anon.post("/api/v1/auth/invitations/accept/", {"key": key, "password": PASSWORD}, format="json")
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["role"] == "member" and accepted.json()["slug"] == "acme"
    reused = anon.post("/api/v1/auth/invitations/accept/", {"key": key, "password": PASSWORD}, format="json")
    assert reused.status_code == 400 and reused.json()["error"]["code"] == "invalid_token"
    assert anon.post("/api/v1/auth/login/", {"email": "new@example.com", "password": PASSWORD}, format="json").status_code == 200


def test_invitation_existing_user_needs_their_password(tenant, other_tenant, anon: APIClient, smtp: Inbox) -> None:
    tenant.owner.post("/api/v1/invitations/", {"email": "owner@globex.example", "role": "viewer"}, format="json")
    key = _path(_link(smtp.outbox[0])).rstrip("/").split("/")[-1]
    wrong = anon.post("/api/v1/auth/invitations/accept/", {"key": key, "password": "not theirs at all"}, format="json")
    assert wrong.status_code == 401
    ok = anon.post("/api/v1/auth/invitations/accept/", {"key": key, "password": "correct horse battery staple"}, format="json")
    assert ok.status_code == 200
    assert Membership.objects.filter(user=other_tenant.users["owner"], organisation=tenant.organisation, role="viewer").exists()


def test_invitation_rules(tenant, smtp: Inbox) -> None:
    admin, member = tenant.clients["admin"], tenant.clients["member"]
    assert member.post("/api/v1/invitations/", {"email": "x@example.com", "role": "viewer"}, format="json").status_code == 403
    escalate = admin.post("/api/v1/invitations/", {"email": "x@example.com", "role": "owner"}, format="json")
    assert escalate.status_code == 403
    dup = admin.post("/api/v1/invitations/", {"email": "viewer@acme.example", "role": "viewer"}, format="json")
    assert dup.status_code == 409
    bad = admin.post("/api/v1/invitations/", {"email": "x@example.com", "role": "emperor"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["details"]["fields"][0]["field"] == "role"
    created = admin.post("/api/v1/invitations/", {"email": "x@example.com", "role": "viewer"}, format="json").json()
    assert admin.get("/api/v1/invitations/").json()["count"] == 1
    assert admin.delete(f"/api/v1/invitations/{created['id']}/").status_code == 204
    key = _path(_link(smtp.outbox[-1])).rstrip("/").split("/")[-1]
    gone = APIClient().post("/api/v1/auth/invitations/accept/", {"key": key, "password": PASSWORD}, format="json")
    assert gone.status_code == 400


def test_api_token_lifecycle(make_user, anon: APIClient) -> None:
    make_user("erin@example.com")
    anon.post("/api/v1/auth/login/", {"email": "erin@example.com", "password": "correct horse battery staple"}, format="json")
    created = anon.post("/api/v1/auth/tokens/", {"name": "ci"}, format="json")
    assert created.status_code == 201
    raw = created.json()["token"]
    assert raw.startswith("mqp_") and created.json()["prefix"] == raw[:12]
    assert not ApiToken.objects.filter(key_hash=raw).exists()  # stored hashed

    program = APIClient()
    program.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    assert program.get("/api/v1/auth/me/").json()["email"] == "erin@example.com"
    listed = anon.get("/api/v1/auth/tokens/").json()["results"]
    assert listed[0]["last_used_at"] is not None and "token" not in listed[0]
    assert raw not in anon.get("/api/v1/auth/tokens/").content.decode()

    assert anon.delete(f"/api/v1/auth/tokens/{listed[0]['id']}/").status_code == 204
    refused = program.get("/api/v1/auth/me/")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "authentication_failed"
    assert AuditLog.objects.filter(object_type="api_token", action="revoke").exists()
    garbage = APIClient()
    garbage.credentials(HTTP_AUTHORIZATION="Token nope")
    assert garbage.get("/api/v1/auth/me/").status_code == 401


def test_token_creation_is_rate_limited(tenant) -> None:
    codes = [tenant.owner.post("/api/v1/auth/tokens/", {"name": f"t{i}"}, format="json").status_code for i in range(21)]
    assert codes == [201] * 20 + [429]


def test_tokens_are_private_to_their_user(tenant) -> None:
    mine = tenant.owner.post("/api/v1/auth/tokens/", {"name": "mine"}, format="json").json()
    assert tenant.clients["admin"].get(f"/api/v1/auth/tokens/{mine['id']}/").status_code == 404
    assert tenant.clients["admin"].delete(f"/api/v1/auth/tokens/{mine['id']}/").status_code == 404


def test_unauthenticated_requests_get_401_shape(anon: APIClient) -> None:
    response = anon.get("/api/v1/instances/")
    assert response.status_code in (401, 403)
    assert response.json()["error"]["code"] == "not_authenticated"
