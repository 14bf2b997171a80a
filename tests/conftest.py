"""Shared fixtures: users, organisations with one API client per role, and factories.

``tenant`` and ``other_tenant`` are two independent organisations; each has an owner, admin,
member and viewer, and ``clients[role]`` is an APIClient authenticated with that user's real API
token and the organisation selected through the ``X-Organisation`` header.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.cache import cache
from rest_framework.test import APIClient

from tenants import services
from tenants.models import Membership, Organisation, Role
from tests.smtp import Inbox
from tests.support import free_port

User = get_user_model()
PASSWORD = "correct horse battery staple"
ROLES = ("owner", "admin", "member", "viewer")


_HASHES: dict[str, str] = {}


def _hash(password: str) -> str:
    """Argon2 is slow on purpose; hash each test password once per session."""
    if password not in _HASHES:
        _HASHES[password] = make_password(password)
    return _HASHES[password]


@pytest.fixture(autouse=True, scope="session")
def _cheap_argon2() -> Any:
    """Still Argon2 (the configured hasher), but with minimal cost so hundreds of sign-ups and
    logins in the suite (the schema fuzzer makes many) stay fast."""
    from django.contrib.auth.hashers import Argon2PasswordHasher

    saved = (Argon2PasswordHasher.time_cost, Argon2PasswordHasher.memory_cost, Argon2PasswordHasher.parallelism)
    Argon2PasswordHasher.time_cost, Argon2PasswordHasher.memory_cost, Argon2PasswordHasher.parallelism = 1, 8, 1
    yield
    Argon2PasswordHasher.time_cost, Argon2PasswordHasher.memory_cost, Argon2PasswordHasher.parallelism = saved


@pytest.fixture(scope="session")
def _smtp_server() -> Iterator[tuple[Inbox, int]]:
    """One real SMTP server on loopback for the whole run (architecture §8: e-mails in tests
    cross a real SMTP connection)."""
    from aiosmtpd.controller import Controller

    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


@pytest.fixture(autouse=True)
def smtp(_smtp_server: tuple[Inbox, int], settings: Any) -> Inbox:
    """Every test sends its e-mail over SMTP to that server; this is what arrived (empty at the start)."""
    inbox, port = _smtp_server
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    inbox.clear()
    return inbox


@pytest.fixture(autouse=True)
def _fresh_throttles() -> None:
    """Rate-limit counters live in the cache: start every test from zero."""
    cache.clear()


@pytest.fixture
def plans(db: Any) -> list[Any]:
    return services.plans_ensure_defaults()


@pytest.fixture
def make_user(db: Any) -> Callable[..., Any]:
    def make(email: str, *, password: str = PASSWORD, active: bool = True, is_staff: bool = False) -> Any:
        user = User(username=email, email=email, is_active=active, is_staff=is_staff)
        user.password = _hash(password)
        user.save()
        return user

    return make


def token_client(user: Any, organisation: Organisation | None = None) -> APIClient:
    """An APIClient using a fresh personal API token of ``user``."""
    _, raw = services.api_token_create(user=user, name="tests", actor=services.SYSTEM)
    client = APIClient()
    headers = {"HTTP_AUTHORIZATION": f"Token {raw}"}
    if organisation is not None:
        headers["HTTP_X_ORGANISATION"] = str(organisation.pk)
    client.credentials(**headers)
    client.raw_token = raw  # type: ignore[attr-defined]
    return client


@dataclass
class Tenant:
    organisation: Organisation
    users: dict[str, Any] = field(default_factory=dict)
    clients: dict[str, APIClient] = field(default_factory=dict)

    @property
    def owner(self) -> APIClient:
        return self.clients["owner"]


@pytest.fixture
def make_tenant(db: Any, plans: Any, make_user: Callable[..., Any]) -> Callable[..., Tenant]:
    def make(slug: str, *, plan: str = "standard") -> Tenant:
        owner = make_user(f"owner@{slug}.example")
        organisation = services.organisation_create(name=slug, owner=owner, actor=services.SYSTEM)
        Organisation.objects.filter(pk=organisation.pk).update(plan=next(p for p in plans if p.code == plan))
        organisation.refresh_from_db()
        tenant = Tenant(organisation=organisation, users={"owner": owner})
        for role in ROLES[1:]:
            user = make_user(f"{role}@{slug}.example")
            Membership.objects.create(organisation=organisation, user=user, role=Role(role))
            tenant.users[role] = user
        tenant.clients = {role: token_client(user, organisation) for role, user in tenant.users.items()}
        return tenant

    return make


@pytest.fixture
def tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant("acme")


@pytest.fixture
def other_tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant("globex")


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


def create_instance(client: APIClient, name: str = "prod", **extra: Any) -> dict[str, Any]:
    response = client.post("/api/v1/instances/", {"name": name, **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def resources(tenant: Tenant) -> dict[str, dict[str, Any]]:
    """One of each object type in ``tenant``, created through the API by its owner."""
    c = tenant.owner
    instance = create_instance(c)
    topic = c.post("/api/v1/topics/", {"instance": instance["id"], "name": "orders"}, format="json").json()
    group = c.post("/api/v1/groups/", {"instance": instance["id"], "name": "billing"}, format="json").json()
    credential = c.post("/api/v1/credentials/", {"instance": instance["id"]}, format="json").json()
    rule = c.post("/api/v1/acl-rules/", {"credential": credential["id"], "resource_type": "topic",
                                         "pattern": "orders-*", "actions": ["pub"]}, format="json").json()
    return {"instance": instance, "topic": topic, "group": group, "credential": credential, "acl_rule": rule}
