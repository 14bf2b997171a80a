"""The websocket node agents connect to (``ws/nodes/``); protocol in brokers/node/agent/agent.py.

An adapter (style guide §13): message ``type`` -> handler, ORM work in small
``database_sync_to_async`` helpers calling services. The first frame must be a ``hello`` with the
node id and its token; anything else, or a wrong token, closes the socket with 4401.
"""
from __future__ import annotations

import json
import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from brokers import metrics_ingest
from brokers.models import BrokerNode, NodeEventKind
from brokers.node.agent import merge_patch
from brokers.services import fleet, provisioning

log = logging.getLogger("brokers.consumers")

CLOSE_UNAUTHORISED = 4401
_MAX_PENDING_SNAPSHOTS = 64
_MAX_PENDING_ADMIN = 256


class NodeAgentConsumer(AsyncJsonWebsocketConsumer):
    node_id: int | None = None

    async def connect(self) -> None:
        self.node_id = None
        self.sent: dict[int, list[int]] = {}  # snapshot version -> instance ids it contained
        # The last document sent on this connection: later pushes are merge patches against it
        # (the agent applies frames in order); None means the next push is a full snapshot.
        self.base: tuple[int, dict[str, Any]] | None = None
        self.admin_replies: dict[str, str] = {}  # admin request id -> reply channel
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.node_id is not None:
            await self.channel_layer.group_discard(provisioning.node_group(self.node_id), self.channel_name)
            await database_sync_to_async(self._event)(NodeEventKind.DISCONNECTED, f"close code {code}")

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if self.node_id is None:
            if kind == "hello":
                await self._hello(content)
            else:
                await self._refuse()
            return
        handler = {"ack": self._ack, "nack": self._nack, "heartbeat": self._heartbeat,
                   "metrics": self._metrics, "admin.response": self._admin_response}.get(kind or "")
        if handler is not None:
            await handler(content)

    async def _refuse(self) -> None:
        await self.send_json({"type": "error", "code": "unauthorised"})
        await self.close(code=CLOSE_UNAUTHORISED)

    async def _hello(self, content: dict[str, Any]) -> None:
        node = await database_sync_to_async(fleet.node_authenticate)(
            node_id=content.get("node_id"), token=content.get("token")
        )
        if node is None:
            log.warning("node agent refused (node id %r)", content.get("node_id"))
            await self._refuse()
            return
        self.node_id = node.pk
        await self.channel_layer.group_add(provisioning.node_group(node.pk), self.channel_name)
        await database_sync_to_async(self._connected)(content.get("applied_version"))
        await self._push()

    def _event(self, kind: str, detail: str = "") -> None:
        node = BrokerNode.objects.get(pk=self.node_id)
        fleet.node_event(node=node, kind=kind, detail=detail)

    def _connected(self, applied: Any) -> None:
        self._event(NodeEventKind.CONNECTED, f"agent reports version {applied}")
        fleet.node_record_heartbeat(node_id=self.node_id)  # type: ignore[arg-type]

    async def _push(self) -> None:
        doc, instance_ids = await database_sync_to_async(provisioning.node_snapshot)(node_id=self.node_id)
        self.sent[doc["version"]] = instance_ids
        while len(self.sent) > _MAX_PENDING_SNAPSHOTS:
            self.sent.pop(min(self.sent))
        await self.send_json(self._state_frame(doc))
        self.base = (doc["version"], doc)

    def _state_frame(self, doc: dict[str, Any]) -> dict[str, Any]:
        """A ``state.patch`` against the last document sent when one expresses ``doc`` exactly
        and is smaller; otherwise the full ``state``."""
        if self.base is not None:
            base_version, base_doc = self.base
            patch = merge_patch.diff(base_doc, doc)
            if merge_patch.apply(base_doc, patch) == doc and len(json.dumps(patch)) < len(json.dumps(doc)):
                return {"type": "state.patch", "version": doc["version"], "base_version": base_version,
                        "patch": patch, "fingerprint": merge_patch.fingerprint(doc)}
        return {"type": "state", "version": doc["version"], "state": doc}

    async def node_push(self, event: dict[str, Any]) -> None:
        """Channel-layer message: the desired state of this node changed."""
        if self.node_id is not None:
            await self._push()

    async def node_admin(self, event: dict[str, Any]) -> None:
        """Channel-layer message from ``brokers.services.admin.node_request``: forward the request
        to the agent and remember where its answer goes."""
        frame, reply = event.get("frame") or {}, event.get("reply_channel")
        if self.node_id is None or not reply or not frame.get("id"):
            return
        self.admin_replies[str(frame["id"])] = reply
        while len(self.admin_replies) > _MAX_PENDING_ADMIN:  # requesters time out; forget the oldest
            self.admin_replies.pop(next(iter(self.admin_replies)))
        await self.send_json({"type": "admin.request", **frame})

    async def _admin_response(self, content: dict[str, Any]) -> None:
        reply = self.admin_replies.pop(str(content.get("id")), None)
        if reply is not None:
            await self.channel_layer.send(reply, {
                "type": "admin.response", "id": content.get("id"), "ok": bool(content.get("ok")),
                "result": content.get("result"), "error": content.get("error"),
            })

    async def _ack(self, content: dict[str, Any]) -> None:
        version = content.get("version")
        if not isinstance(version, int):
            return
        instance_ids = self.sent.pop(version, [])
        for old in [v for v in self.sent if v < version]:
            self.sent.pop(old)
        await database_sync_to_async(self._applied)(version, instance_ids)

    def _applied(self, version: int, instance_ids: list[int]) -> None:
        fleet.node_record_applied(node_id=self.node_id, version=version)  # type: ignore[arg-type]
        if instance_ids:
            provisioning.instances_mark_ready(node_id=self.node_id, instance_ids=instance_ids)  # type: ignore[arg-type]

    async def _nack(self, content: dict[str, Any]) -> None:
        self.sent.pop(content.get("version"), None)  # type: ignore[arg-type]
        self.base = None  # the node did not take it: whatever comes next is a full snapshot
        if content.get("resync"):  # an increment that did not fit: resend everything now
            await self._push()
            return
        await database_sync_to_async(self._event)(
            NodeEventKind.FAILED, f"refused state {content.get('version')}: {str(content.get('error'))[:500]}"
        )

    async def _heartbeat(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(fleet.node_record_heartbeat)(node_id=self.node_id)

    async def _metrics(self, content: dict[str, Any]) -> None:
        await database_sync_to_async(self._ingest)(content.get("payload"))

    def _ingest(self, payload: Any) -> None:
        if isinstance(payload, dict):
            metrics_ingest.ingest(BrokerNode.objects.get(pk=self.node_id), payload)
