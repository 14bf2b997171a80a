"""REST routes of the brokers app (metrics, alerting, fleet for operators), mounted at /api/v1/ after tenants'."""
from __future__ import annotations

from rest_framework.routers import DefaultRouter

from brokers.api import admin, alerts, fleet, metrics

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("instances", metrics.InstanceMetricsViewSet, basename="instance-metrics")
router.register("instances", admin.InstanceAdminViewSet, basename="instance-admin")
router.register("alert-rules", alerts.AlertRuleViewSet, basename="alert-rule")
router.register("alerts", alerts.AlertViewSet, basename="alert")
router.register("alert-contacts", alerts.AlertContactViewSet, basename="alert-contact")
router.register("fleet/clusters", fleet.ClusterViewSet, basename="fleet-cluster")
router.register("fleet/nodes", fleet.BrokerNodeViewSet, basename="fleet-node")

urlpatterns = router.urls
