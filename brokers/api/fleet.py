"""Operator endpoints for the fleet (platform staff only; tenants never see nodes): clusters,
nodes with their recent events, and start/stop/restart actions queued on the node's host."""
from __future__ import annotations

from typing import Any

from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from brokers.models import BrokerNode, Cluster, NodeEvent


class ClusterSerializer(serializers.ModelSerializer):
    instances = serializers.IntegerField(source="placements.count", read_only=True)

    class Meta:
        model = Cluster
        fields = ["id", "name", "kind", "organisation", "instances", "created_at"]


class NodeEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = NodeEvent
        fields = ["id", "kind", "detail", "created_at"]


class BrokerNodeSerializer(serializers.ModelSerializer):
    cluster = serializers.SlugRelatedField(slug_field="name", read_only=True)
    recent_events = serializers.SerializerMethodField()

    class Meta:
        model = BrokerNode
        # token_hash is deliberately absent
        fields = ["id", "name", "cluster", "host_name", "role", "status", "pid", "grpc_port", "metrics_port",
                  "advertised_endpoint", "desired_version", "applied_version", "last_heartbeat_at", "started_at",
                  "restart_count", "next_restart_at", "created_at", "recent_events"]

    def get_recent_events(self, node: BrokerNode) -> list[dict[str, Any]]:
        return NodeEventSerializer(node.events.all()[:20], many=True).data


class ClusterViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [IsAdminUser]
    serializer_class = ClusterSerializer
    queryset = Cluster.objects.order_by("pk")


class BrokerNodeViewSet(viewsets.ReadOnlyModelViewSet):
    permission_classes = [IsAdminUser]
    serializer_class = BrokerNodeSerializer
    queryset = BrokerNode.objects.select_related("cluster").order_by("pk")
    filterset_fields = ["cluster", "status", "host_name"]

    def _queue(self, task: Any) -> Response:
        node = self.get_object()
        task.apply_async(args=[node.pk], queue=node.queue)
        return Response({"queued": task.name.rsplit(".", 1)[-1], "queue": node.queue}, status=status.HTTP_202_ACCEPTED)

    @action(detail=True, methods=["post"])
    def start(self, request: Request, pk: str | None = None) -> Response:
        from brokers.tasks import start_node_task

        return self._queue(start_node_task)

    @action(detail=True, methods=["post"])
    def stop(self, request: Request, pk: str | None = None) -> Response:
        from brokers.tasks import stop_node_task

        return self._queue(stop_node_task)

    @action(detail=True, methods=["post"])
    def restart(self, request: Request, pk: str | None = None) -> Response:
        from brokers.tasks import restart_node_task

        return self._queue(restart_node_task)
