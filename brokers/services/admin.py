"""Management queries that need a node's data, sent over the authenticated admin channel
(docs/fleet.md, "Admin channel"; architecture §4).

``node_request(instance, op, args)`` finds the node serving the instance, sends the request to
that node's consumer through the channel layer (group ``node.<id>``) with a fresh reply channel,
and waits for the node's answer. The websocket behind the consumer was authenticated by the
node token in its ``hello``; requests carry the instance's namespace, and the node never looks
outside it.
"""
from __future__ import annotations

import asyncio
import uuid
from typing import Any, ClassVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

from brokers.models import BrokerNode, NodeStatus
from brokers.services.provisioning import node_group
from tenants.errors import ApplicationError, ErrorCode
from tenants.models import ConsumerGroup, Instance
from tenants.services import Actor, audit_record

DEFAULT_TIMEOUT_S = 5.0  # setting MQ_ADMIN_TIMEOUT_S overrides it


class NodeUnavailable(ApplicationError):
    """No node serves the instance right now (not placed, down, or not connected)."""

    code: ClassVar[ErrorCode] = "node_unavailable"  # type: ignore[assignment]
    status = 503


class NodeTimeout(ApplicationError):
    """The node did not answer in time."""

    code: ClassVar[ErrorCode] = "node_timeout"  # type: ignore[assignment]
    status = 504


class NodeRefused(ApplicationError):
    """The node answered with an error; ``status`` follows the node's code (see ``_STATUS``)."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message, code=code, details={"node_code": code})  # type: ignore[arg-type]
        self.status = status  # type: ignore[misc]


#: node error code -> (API code, HTTP status)
_STATUS: dict[str, tuple[str, int]] = {
    "message_not_found": (ErrorCode.NOT_FOUND, 404),
    "invalid_argument": (ErrorCode.VALIDATION_ERROR, 400),
    "no_subscription": (ErrorCode.CONFLICT, 409),
    "no_origin": (ErrorCode.CONFLICT, 409),
    "store_error": ("node_unavailable", 503),
    "admin_unavailable": ("node_unavailable", 503),
}


def instance_node(instance: Instance) -> BrokerNode | None:
    """The node serving ``instance``: its cluster's first node (one node per cluster today)."""
    return BrokerNode.objects.filter(cluster__placements__instance_id=instance.pk).order_by("pk").first()


async def _roundtrip(node_id: int, frame: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    layer = get_channel_layer()
    reply = await layer.new_channel()
    await layer.group_send(node_group(node_id), {"type": "node.admin", "reply_channel": reply, "frame": frame})
    try:
        return await asyncio.wait_for(layer.receive(reply), timeout)
    except (TimeoutError, asyncio.TimeoutError):
        return None


def node_request(instance: Instance, op: str, args: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run admin ``op`` for ``instance`` on its node and return the node's result.

    Raises ``ApplicationError`` (409 ``conflict``) for an instance not placed on any node,
    ``NodeUnavailable`` (503 ``node_unavailable``) when its node is not up, ``NodeTimeout`` (504 ``node_timeout``) when the node does not answer
    within ``timeout`` seconds, ``NodeRefused`` for an error answer (404/400/409/502).
    """
    if timeout is None:
        timeout = float(getattr(settings, "MQ_ADMIN_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    node = instance_node(instance)
    if node is None:  # never provisioned: a state of the instance, not a node outage
        raise ApplicationError("The instance is not placed on a broker node yet.", code=ErrorCode.CONFLICT,
                               details={"instance_status": instance.status})
    if node.status != NodeStatus.UP:
        raise NodeUnavailable(f"The broker node serving this instance is {node.status}.",
                              details={"node_status": node.status})
    frame = {"id": uuid.uuid4().hex, "op": op, "namespace": instance.namespace, "args": args}
    answer = async_to_sync(_roundtrip)(node.pk, frame, timeout)
    if answer is None:
        raise NodeTimeout(f"The broker node did not answer within {timeout:g} s.")
    if answer.get("ok"):
        return answer.get("result") or {}
    error = answer.get("error") or {}
    node_code = str(error.get("code") or "node_error")
    code, status = _STATUS.get(node_code, ("node_error", 502))
    raise NodeRefused(code, str(error.get("message") or "The broker node refused the request."), status)


# ---------------------------------------------------------------------- mutating operations
# The REST views and the console pages both call these, so the rules (what the node is asked,
# what the audit log keeps) live in one place.

def _topic_in(instance: Instance, name: str) -> str:
    if not instance.topics.filter(name=name).exists():
        error = ApplicationError(f"Topic {name!r} does not exist in this instance.", code=ErrorCode.NOT_FOUND)
        error.status = 404  # type: ignore[misc]
        raise error
    return name


def group_reset_offset(*, actor: Actor, instance: Instance, group: ConsumerGroup, timestamp_ms: int,
                       dry_run: bool, topic: str | None = None, timeout: float | None = None) -> dict[str, Any]:
    """Move ``group`` to the first message stored at/after ``timestamp_ms`` on every queue (of
    ``topic`` only, when given). The node answers per queue what is skipped or replayed.

    A dry run changes nothing and is not audited; an applied reset is audited as
    ``reset_offset`` on the instance, with the counts the node reported.
    """
    args: dict[str, Any] = {"group": group.name, "timestamp_ms": timestamp_ms, "dry_run": dry_run}
    if topic:
        args["topic"] = _topic_in(instance, topic)
    result = node_request(instance, "group.reset_offset", args, timeout=timeout)
    if not dry_run:
        audit_record(actor=actor, organisation=instance.organisation, obj=instance, action="reset_offset", after={
            "group": group.name, "timestamp_ms": timestamp_ms, "topic": topic or None,
            "skipped": result.get("skipped"), "replayed": result.get("replayed")})
    return result


def dlq_resend(*, actor: Actor, instance: Instance, group: ConsumerGroup, msg_id: str,
               timeout: float | None = None) -> dict[str, Any]:
    """Send a copy of dead-lettered message ``msg_id`` of ``group`` back to its original topic
    (the copy gets a new message id). Audited as ``dlq_resend`` on the instance."""
    result = node_request(instance, "group.dlq_resend", {"group": group.name, "msg_id": msg_id}, timeout=timeout)
    audit_record(actor=actor, organisation=instance.organisation, obj=instance, action="dlq_resend", after={
        "group": group.name, "dlq_msg_id": msg_id, "topic": result.get("topic"), "msg_id": result.get("msg_id")})
    return result
