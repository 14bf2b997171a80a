"""Management operations on an instance's data, answered by the node serving it over the admin
channel (docs/fleet.md, "Admin channel"):

    GET  instances/{id}/messages/?id=            one message
    GET  instances/{id}/messages/?topic=&key=    by key
    GET  instances/{id}/messages/?topic=&from=&to=&cursor=&limit=   by store time, paged
    GET  instances/{id}/messages/{msg_id}/trace/
    GET  instances/{id}/groups/{name}/status/
    POST instances/{id}/groups/{name}/reset-offset/   {"timestamp", "dry_run", "topic"?}
    GET  instances/{id}/groups/{name}/dlq/?cursor=&limit=
    POST instances/{id}/groups/{name}/dlq/{msg_id}/resend/

Scoped by the tenant base (another organisation's instance: 404). Viewers read group status;
members query messages, traces and DLQs; admins and owners reset offsets and resend (audited by
``brokers.services.admin.group_reset_offset`` / ``dlq_resend``).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from brokers.services import admin as admin_service
from tenants.api.permissions import RolePermission
from tenants.api.scoping import ORGANISATION_PARAMETERS, TenantScopedViewSet
from tenants.errors import ApplicationError, ErrorCode
from tenants.models import ConsumerGroup, Instance, Role, Topic

MSG_ID = r"(?P<msg_id>[0-9A-Fa-f]{1,64})"
GROUP = r"(?P<group>[^/]+)"

_ERRORS = {
    400: OpenApiResponse(description="validation_error"),
    404: OpenApiResponse(description="not_found: no such instance (or another organisation's), group, topic or message"),
    503: OpenApiResponse(description="node_unavailable: no broker node serves the instance right now"),
    504: OpenApiResponse(description="node_timeout: the node did not answer in time"),
}


@extend_schema_field({"oneOf": [{"type": "integer", "format": "int64"}, {"type": "string", "format": "date-time"}]})
class TimestampField(serializers.Field):
    """Epoch milliseconds (an integer) or an ISO 8601 date-time; internal value: epoch ms."""

    default_error_messages = {"invalid": "Give epoch milliseconds or an ISO 8601 date-time."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, int) or (isinstance(data, str) and data.isdigit()):
            value = int(data)
            if not 0 <= value < 2**62:
                self.fail("invalid")
            return value
        try:
            parsed = serializers.DateTimeField().to_internal_value(data)
        except serializers.ValidationError:
            self.fail("invalid")
        assert isinstance(parsed, datetime)
        return int(parsed.timestamp() * 1000)

    def to_representation(self, value: Any) -> Any:
        return value


class MessageQuerySerializer(serializers.Serializer):
    id = serializers.RegexField(r"^[0-9A-Fa-f]{1,64}$", required=False, help_text="Message id.")
    topic = serializers.CharField(required=False, max_length=127)
    key = serializers.CharField(required=False, max_length=255)
    cursor = serializers.CharField(required=False, max_length=64, help_text="next_cursor of the previous page.")
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=32)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # "from" is a Python keyword: read it by hand
        raw_from, raw_to = self.initial_data.get("from"), self.initial_data.get("to")
        if raw_from is not None:
            attrs["from_ms"] = TimestampField().run_validation(raw_from)
        if raw_to is not None:
            attrs["to_ms"] = TimestampField().run_validation(raw_to)
        if "id" in attrs:
            return attrs
        if "topic" not in attrs:
            raise serializers.ValidationError({"id": "Give id, topic + key, or topic + from."})
        if "key" not in attrs and "from_ms" not in attrs:
            raise serializers.ValidationError({"key": "Give key, or from (and optionally to)."})
        if "from_ms" in attrs and "to_ms" in attrs and attrs["from_ms"] > attrs["to_ms"]:
            raise serializers.ValidationError({"from": "must not be after 'to'."})
        return attrs


class ResetOffsetSerializer(serializers.Serializer):
    timestamp = TimestampField(help_text="Epoch ms or ISO 8601: the group resumes at the first message stored at/after it.")
    dry_run = serializers.BooleanField(default=False)
    topic = serializers.CharField(required=False, max_length=127,
                                  help_text="Only this topic (required if the group has not consumed yet).")


class DlqQuerySerializer(serializers.Serializer):
    cursor = serializers.IntegerField(required=False, min_value=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=32)


class InstanceAdminViewSet(TenantScopedViewSet):
    """Message queries, traces, group status/offsets and DLQ operations of one instance."""

    queryset = Instance.objects.all()
    permission_classes = [RolePermission]
    serializer_class = MessageQuerySerializer
    action_roles = {
        "messages": Role.MEMBER,
        "message_trace": Role.MEMBER,
        "group_status": Role.VIEWER,
        "group_dlq": Role.MEMBER,
        "group_reset_offset": Role.ADMIN,
        "group_dlq_resend": Role.ADMIN,
    }

    # ------------------------------------------------------------------ helpers
    def _topic(self, instance: Instance, name: str) -> str:
        if not Topic.objects.filter(instance=instance, name=name).exists():
            raise _not_found(f"Topic {name!r} does not exist in this instance.")
        return name

    def _group(self, instance: Instance, name: str) -> ConsumerGroup:
        group = ConsumerGroup.objects.filter(instance=instance, name=name).first()
        if group is None:
            raise _not_found(f"Consumer group {name!r} does not exist in this instance.")
        return group

    # ------------------------------------------------------------------ messages
    @extend_schema(
        parameters=[*ORGANISATION_PARAMETERS, MessageQuerySerializer,
                    OpenApiParameter("from", OpenApiTypes.STR, description="Epoch ms or ISO 8601 (store time, inclusive)."),
                    OpenApiParameter("to", OpenApiTypes.STR, description="Epoch ms or ISO 8601 (exclusive).")],
        responses={200: OpenApiTypes.OBJECT, **_ERRORS},
    )
    @action(detail=True, methods=["get"], url_path="messages")
    def messages(self, request: Request, pk: str | None = None) -> Response:
        """``?id=`` → ``{"message"}``; ``?topic=&key=`` → ``{"messages"}``;
        ``?topic=&from=&to=&cursor=&limit=`` → ``{"messages", "next_cursor"}``."""
        instance = self.get_object()
        query = MessageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        if "id" in q:
            result = admin_service.node_request(instance, "message.get", {"msg_id": q["id"]})
        elif "key" in q:
            result = admin_service.node_request(instance, "message.by_key", {
                "topic": self._topic(instance, q["topic"]), "key": q["key"], "limit": q["limit"]})
        else:
            args = {"topic": self._topic(instance, q["topic"]), "from_ms": q["from_ms"], "limit": q["limit"]}
            if "to_ms" in q:
                args["to_ms"] = q["to_ms"]
            if q.get("cursor"):
                args["cursor"] = q["cursor"]
            result = admin_service.node_request(instance, "message.by_time", args)
        return Response({"instance": instance.pk, **result})

    @extend_schema(parameters=ORGANISATION_PARAMETERS, responses={200: OpenApiTypes.OBJECT, **_ERRORS})
    @action(detail=True, methods=["get"], url_path=rf"messages/{MSG_ID}/trace")
    def message_trace(self, request: Request, pk: str | None = None, msg_id: str = "") -> Response:
        """Sent (born time, host, producer), stored (time, queue/offset) and, per consumer group,
        the delivery status: ``acked``, ``in_flight`` (attempt), ``awaiting_retry``,
        ``dead_lettered``, ``not_delivered``."""
        instance = self.get_object()
        return Response({"instance": instance.pk,
                         **admin_service.node_request(instance, "message.trace", {"msg_id": msg_id})})

    # ------------------------------------------------------------------ groups
    @extend_schema(parameters=ORGANISATION_PARAMETERS, responses={200: OpenApiTypes.OBJECT, **_ERRORS})
    @action(detail=True, methods=["get"], url_path=rf"groups/{GROUP}/status")
    def group_status(self, request: Request, pk: str | None = None, group: str = "") -> Response:
        """Committed offset, lag and in-flight count per topic and queue, online clients, DLQ size."""
        instance = self.get_object()
        self._group(instance, group)
        return Response({"instance": instance.pk,
                         **admin_service.node_request(instance, "group.status", {"group": group})})

    @extend_schema(parameters=ORGANISATION_PARAMETERS, request=ResetOffsetSerializer,
                   responses={200: OpenApiTypes.OBJECT, **_ERRORS})
    @action(detail=True, methods=["post"], url_path=rf"groups/{GROUP}/reset-offset")
    def group_reset_offset(self, request: Request, pk: str | None = None, group: str = "") -> Response:
        """Move the group to the first message stored at/after ``timestamp`` on every queue.
        ``dry_run`` answers per queue how many messages would be skipped or replayed."""
        instance = self.get_object()
        consumer_group = self._group(instance, group)
        body = ResetOffsetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        b = body.validated_data
        result = admin_service.group_reset_offset(
            actor=self.actor, instance=instance, group=consumer_group, timestamp_ms=b["timestamp"],
            dry_run=b["dry_run"], topic=b.get("topic"))
        return Response({"instance": instance.pk, **result})

    @extend_schema(parameters=[*ORGANISATION_PARAMETERS, DlqQuerySerializer],
                   responses={200: OpenApiTypes.OBJECT, **_ERRORS})
    @action(detail=True, methods=["get"], url_path=rf"groups/{GROUP}/dlq")
    def group_dlq(self, request: Request, pk: str | None = None, group: str = "") -> Response:
        """Messages in the group's dead-letter queue (``%DLQ%<group>``), oldest first, paged."""
        instance = self.get_object()
        self._group(instance, group)
        query = DlqQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        args: dict[str, Any] = {"group": group, "limit": query.validated_data["limit"]}
        if "cursor" in query.validated_data:
            args["cursor"] = query.validated_data["cursor"]
        return Response({"instance": instance.pk, **admin_service.node_request(instance, "group.dlq", args)})

    @extend_schema(parameters=ORGANISATION_PARAMETERS, request=None,
                   responses={200: OpenApiTypes.OBJECT, **_ERRORS})
    @action(detail=True, methods=["post"], url_path=rf"groups/{GROUP}/dlq/{MSG_ID}/resend")
    def group_dlq_resend(self, request: Request, pk: str | None = None, group: str = "", msg_id: str = "") -> Response:
        """Send a copy of a DLQ message back to its original topic (new message id)."""
        instance = self.get_object()
        result = admin_service.dlq_resend(actor=self.actor, instance=instance, group=self._group(instance, group),
                                          msg_id=msg_id)
        return Response({"instance": instance.pk, **result})


def _not_found(message: str) -> ApplicationError:
    error = ApplicationError(message, code=ErrorCode.NOT_FOUND)
    error.status = 404  # type: ignore[misc]
    return error
