"""Metrics of an instance: ``/instances/{id}/metrics/`` (a time series) and
``/instances/{id}/metrics/summary/``. Scoped like every tenant view: another organisation's
instance answers 404."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from brokers.models.metrics import Resolution
from brokers.services import metrics as metric_selectors
from tenants.api.permissions import RolePermission
from tenants.api.scoping import ORGANISATION_PARAMETERS, TenantScopedViewSet
from tenants.models import Instance

MAX_POINTS = 2000


class SeriesQuerySerializer(serializers.Serializer):
    metric = serializers.ChoiceField(choices=sorted(metric_selectors.METRICS))
    topic = serializers.CharField(required=False, max_length=127)
    group = serializers.CharField(required=False, max_length=127)
    resolution = serializers.ChoiceField(choices=Resolution.values, default=Resolution.MINUTE)
    field = serializers.ChoiceField(choices=["value", "max"], default="value",
                                    help_text="Gauges: last sample (value) or largest sample (max) per bucket.")
    to = serializers.DateTimeField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # "from" is a Python keyword: read it by hand
        raw_from = self.initial_data.get("from")
        end = attrs.get("to") or serializers.DateTimeField().to_internal_value(
            self.context["now"].isoformat())
        if raw_from:
            start = serializers.DateTimeField().run_validation(raw_from)
        else:
            start = end - (timedelta(hours=1) if attrs["resolution"] == Resolution.MINUTE else timedelta(days=1))
        step = timedelta(minutes=1) if attrs["resolution"] == Resolution.MINUTE else timedelta(hours=1)
        if start > end:
            raise serializers.ValidationError({"from": "must be before 'to'."})
        if (end - start) / step > MAX_POINTS:
            raise serializers.ValidationError({"from": f"at most {MAX_POINTS} points per request."})
        return attrs | {"start": start, "end": end}


class InstanceMetricsViewSet(TenantScopedViewSet):
    """Read-only metrics of the caller's instances (any role)."""

    queryset = Instance.objects.all()
    permission_classes = [RolePermission]
    serializer_class = SeriesQuerySerializer

    @extend_schema(parameters=[*ORGANISATION_PARAMETERS, SeriesQuerySerializer], responses={200: dict})
    @action(detail=True, methods=["get"], url_path="metrics")
    def series(self, request: Request, pk: str | None = None) -> Response:
        """``?metric=messages_in&topic=&group=&from=&to=&resolution=1m|1h`` → ``{"points": [[t, v], ...]}``;
        rows of several nodes/topics/groups are combined (docs/metrics-and-alerting.md)."""
        instance = self.get_object()
        from django.utils import timezone

        query = SeriesQuerySerializer(data=request.query_params, context={"now": timezone.now()})
        query.is_valid(raise_exception=True)
        q = query.validated_data
        points = metric_selectors.metric_series(
            instance=instance, metric=q["metric"], resolution=q["resolution"], start=q["start"], end=q["end"],
            topic=q.get("topic"), group=q.get("group"), field="max_value" if q["field"] == "max" else "value",
        )
        return Response({
            "instance": instance.pk, "metric": q["metric"], "resolution": q["resolution"],
            "topic": q.get("topic"), "group": q.get("group"), "from": q["start"], "to": q["end"],
            "kind": "counter" if q["metric"] in metric_selectors.COUNTERS else "gauge",
            "points": [[bucket, value] for bucket, value in points],
        })

    @extend_schema(parameters=ORGANISATION_PARAMETERS, responses={200: dict})
    @action(detail=True, methods=["get"], url_path="metrics/summary")
    def summary(self, request: Request, pk: str | None = None) -> Response:
        """Last complete minute's traffic, storage against the quota, per-group lag/age/DLQ."""
        return Response(metric_selectors.instance_metrics_summary(instance=self.get_object()))
