"""Websocket consumers of the console. Session-authenticated (AuthMiddlewareStack) and
origin-checked (console.routing); the instance is looked up with the same tenant scoping as the
pages, so another organisation's instance closes the socket with 4404, like a missing one."""
from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from console.live import instance_group, instance_snapshot
from console.scoping import SESSION_KEY
from tenants.errors import ApplicationError
from tenants.models import Instance
from tenants.selectors import membership_resolve, memberships_of_user

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


@database_sync_to_async
def _visible_instance(user: Any, selected: Any, instance_id: int) -> Instance | None:
    try:
        membership = membership_resolve(user=user, selector=str(selected)) if selected else None
    except ApplicationError:
        membership = None
    if membership is None:
        membership = memberships_of_user(user=user).first()
    if membership is None:
        return None
    return Instance.objects.filter(organisation=membership.organisation, pk=instance_id).first()


class InstanceConsumer(AsyncJsonWebsocketConsumer):
    """``ws/console/instances/<id>/``: the instance's status now, then every change."""

    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        session = self.scope.get("session")
        selected = session.get(SESSION_KEY) if session is not None else None
        instance = await _visible_instance(user, selected, int(self.scope["url_route"]["kwargs"]["instance_id"]))
        if instance is None:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group = instance_group(instance.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json(instance_snapshot(instance))

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def instance_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event["data"])
