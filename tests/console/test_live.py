"""The console websocket through the real ASGI application: session auth, origin check, tenant
scoping, and a pushed update when the fleet records an instance's status."""
from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from mqplatform.asgi import application
from tenants import services
from tenants.models import InstanceStatus

pytestmark = pytest.mark.django_db(transaction=True)


def _cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


def _socket(path: str, cookie: bytes | None, origin: bytes = b"http://testserver") -> WebsocketCommunicator:
    headers = [(b"origin", origin), (b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie))
    return WebsocketCommunicator(application, path, headers=headers)


async def test_status_pushed_to_the_owners_browser_only(tenant: Any, other_tenant: Any) -> None:
    instance = await database_sync_to_async(services.instance_create)(
        organisation=tenant.organisation, name="prod", actor=services.SYSTEM)
    path = f"/ws/console/instances/{instance.pk}/"
    mine = _socket(path, await database_sync_to_async(_cookie)(tenant.users["viewer"]))
    connected, _ = await mine.connect()
    assert connected
    first = await mine.receive_json_from(timeout=5)
    assert first["status"] == "provisioning" and first["endpoint"] == ""

    await database_sync_to_async(services.instance_set_status)(
        instance=instance, status=InstanceStatus.READY, endpoint="127.0.0.1:18081", actor=services.SYSTEM)
    pushed = await mine.receive_json_from(timeout=5)
    assert pushed == {"type": "instance", "id": instance.pk, "status": "ready", "endpoint": "127.0.0.1:18081",
                      "status_message": ""}
    await mine.disconnect()

    theirs = _socket(path, await database_sync_to_async(_cookie)(other_tenant.users["owner"]))
    connected, code = await theirs.connect()
    assert not connected and code == 4404
    anonymous = _socket(path, None)
    connected, code = await anonymous.connect()
    assert not connected and code == 4401
    foreign_origin = _socket(path, await database_sync_to_async(_cookie)(tenant.users["viewer"]), origin=b"http://evil.example")
    connected, _ = await foreign_origin.connect()
    assert not connected
