"""Signal receivers of alerting (adapters; connected in ``BrokersConfig.ready``)."""
from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from tenants.signals import instance_created


@receiver(instance_created, dispatch_uid="brokers.alerting.default_rules")
def create_default_alert_rules(sender: Any, instance_id: int, **kwargs: Any) -> None:
    """Every new instance gets the default alert rules (sent after commit by tenants)."""
    from brokers.services.alerting import alert_rules_create_defaults
    from tenants.models import Instance

    instance = Instance.objects.filter(pk=instance_id).first()
    if instance is not None:
        alert_rules_create_defaults(instance=instance)
