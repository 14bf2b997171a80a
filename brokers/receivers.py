"""Receivers of the tenants' fleet signals (connected in BrokersConfig.ready). Both signals are
sent on commit, so the tasks always see the committed rows."""
from __future__ import annotations

from typing import Any

from django.conf import settings

from tenants.models import Instance, InstanceStatus


def on_instance_created(sender: Any, instance_id: int, **kwargs: Any) -> None:
    if settings.MQ_FLEET_AUTOPROVISION:
        from brokers.tasks import provision_instance_task

        provision_instance_task.delay(instance_id)


def on_instance_state_changed(sender: Any, instance_id: int, **kwargs: Any) -> None:
    from brokers.services.provisioning import instance_push_state

    status = Instance.objects.filter(pk=instance_id).values_list("status", flat=True).first()
    if status == InstanceStatus.DELETING and settings.MQ_FLEET_AUTOPROVISION:
        from brokers.tasks import delete_instance_task

        delete_instance_task.delay(instance_id)
        return
    instance_push_state(instance_id=instance_id)
