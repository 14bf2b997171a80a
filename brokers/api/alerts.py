"""Alert rules (CRUD; viewers read), alert history (read) and the organisation's alert contacts.
All scoped through the tenant base: other organisations' objects answer 404."""
from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Model
from rest_framework import serializers

from brokers.models.alerting import PLATFORM_KINDS, Alert, AlertContact, AlertRule, RuleKind
from brokers.services import alerting
from tenants.api.serializers import TenantRelatedField
from tenants.api.views.resources import ServiceViewSet, documented
from tenants.api.permissions import RolePermission
from tenants.api.scoping import TenantScopedViewSet
from tenants.models import Instance, Role
from rest_framework import mixins

TENANT_KINDS = [(k.value, k.label) for k in RuleKind if k not in PLATFORM_KINDS]


class AlertRuleSerializer(serializers.ModelSerializer):
    instance = TenantRelatedField(Instance)
    kind = serializers.ChoiceField(choices=TENANT_KINDS)
    threshold = serializers.FloatField(min_value=0)
    recipients = serializers.ListField(child=serializers.EmailField(), required=False, max_length=20)

    class Meta:
        model = AlertRule
        fields = ["id", "instance", "name", "kind", "enabled", "threshold", "topic", "group", "duration_seconds",
                  "cooldown_seconds", "reminder_seconds", "recipients", "is_default", "created_at", "updated_at"]
        read_only_fields = ["is_default", "created_at", "updated_at"]


class AlertRuleUpdateSerializer(AlertRuleSerializer):
    class Meta(AlertRuleSerializer.Meta):
        fields = ["name", "kind", "enabled", "threshold", "topic", "group", "duration_seconds", "cooldown_seconds",
                  "reminder_seconds", "recipients"]
        read_only_fields: list[str] = []


class AlertSerializer(serializers.ModelSerializer):
    rule_name = serializers.CharField(source="rule.name", read_only=True)

    class Meta:
        model = Alert
        fields = ["id", "rule", "rule_name", "instance", "subject", "kind", "status", "threshold", "value",
                  "peak_value", "last_value", "fired_at", "resolved_at", "reminders_sent"]


class AlertContactSerializer(serializers.ModelSerializer):
    class Meta:
        model = AlertContact
        fields = ["id", "email", "name", "created_at"]
        read_only_fields = ["created_at"]


class _ByInstanceFilter(django_filters.FilterSet):
    instance = django_filters.NumberFilter(field_name="instance_id")


class AlertRuleFilter(_ByInstanceFilter):
    class Meta:
        model = AlertRule
        fields = ["instance", "kind", "enabled"]


class AlertFilter(_ByInstanceFilter):
    rule = django_filters.NumberFilter(field_name="rule_id")

    class Meta:
        model = Alert
        fields = ["instance", "rule", "status", "kind"]


@documented(AlertRuleSerializer, AlertRuleUpdateSerializer)
class AlertRuleViewSet(ServiceViewSet):
    """Alert rules of the organisation's instances; filter with ``?instance=<id>``."""

    queryset = AlertRule.objects.select_related("instance")
    serializer_class = AlertRuleSerializer
    update_serializer_class = AlertRuleUpdateSerializer
    filterset_class = AlertRuleFilter

    def service_create(self, data: dict[str, Any]) -> Model:
        return alerting.alert_rule_create(actor=self.actor, **data)

    def service_update(self, obj: AlertRule, data: dict[str, Any]) -> Model:
        return alerting.alert_rule_update(rule=obj, actor=self.actor, **data)

    def service_delete(self, obj: AlertRule) -> None:
        alerting.alert_rule_delete(rule=obj, actor=self.actor)


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Alert history (newest first); ``?status=firing`` for the open ones."""

    queryset = Alert.objects.select_related("rule")
    serializer_class = AlertSerializer
    permission_classes = [RolePermission]
    filterset_class = AlertFilter


@documented(AlertContactSerializer, AlertContactSerializer)
class AlertContactViewSet(ServiceViewSet):
    """E-mail addresses that receive the organisation's alerts (admins manage them); with none,
    owners and admins receive them."""

    queryset = AlertContact.objects.all()
    serializer_class = AlertContactSerializer
    update_serializer_class = AlertContactSerializer
    write_role = Role.ADMIN

    def service_create(self, data: dict[str, Any]) -> Model:
        return alerting.alert_contact_create(organisation=self.get_organisation(), actor=self.actor, **data)

    def service_update(self, obj: AlertContact, data: dict[str, Any]) -> Model:
        return alerting.alert_contact_update(contact=obj, actor=self.actor, **data)

    def service_delete(self, obj: AlertContact) -> None:
        alerting.alert_contact_delete(contact=obj, actor=self.actor)
