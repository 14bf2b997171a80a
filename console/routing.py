"""Websocket routes for the console's live updates: origin-checked (ALLOWED_HOSTS) and
session-authenticated, unlike the node agents' route."""
from __future__ import annotations

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from console.consumers import InstanceConsumer


def _browser(app: Any) -> Any:
    return AllowedHostsOriginValidator(AuthMiddlewareStack(app))


websocket_urlpatterns: list = [
    path("ws/console/instances/<int:instance_id>/", _browser(InstanceConsumer.as_asgi())),
]
