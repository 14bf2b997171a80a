"""Live updates: when an instance row changes (status, endpoint), tell the browsers watching it.

A ``post_save`` receiver on :class:`tenants.models.Instance` (connected in ``ConsoleConfig.ready``)
sends, after the transaction commits, one message to the channel-layer group of that instance;
:class:`console.consumers.InstanceConsumer` forwards it to its websocket. Failures to reach the
channel layer never break the write that triggered them: pages also poll as a fallback.
"""
from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def instance_group(instance_id: int) -> str:
    return f"console.instance.{instance_id}"


def instance_snapshot(instance: Any) -> dict[str, Any]:
    return {"type": "instance", "id": instance.pk, "status": instance.status, "endpoint": instance.endpoint,
            "status_message": instance.status_message}


def _publish(message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(instance_group(message["id"]), {"type": "instance.changed", "data": message})
    except Exception:  # the page's polling still picks the change up
        logger.warning("console: could not publish instance %s change", message["id"], exc_info=True)


def on_instance_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    message = instance_snapshot(instance)
    transaction.on_commit(lambda: _publish(message))
