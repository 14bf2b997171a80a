"""Celery adapters of the fleet services (style guide §13): ids in, one service call, retry
policy here. Node start/stop/restart tasks run on the node host's queue ``host.<name>``."""
from __future__ import annotations

from celery import shared_task
from django.conf import settings


@shared_task(acks_late=True)
def provision_instance_task(instance_id: int) -> str:
    from brokers.services import provisioning

    node = provisioning.instance_provision_start(instance_id=instance_id)
    if node is None:  # not provisioning (any more), or its node failed to start
        return provisioning.instance_status(instance_id=instance_id)
    if settings.CELERY_TASK_ALWAYS_EAGER:
        # Inline (tests, no Redis): wait for the node's ack, which the consumer turns into ready.
        return provisioning.instance_wait_ready(instance_id=instance_id, timeout_s=settings.MQ_PROVISION_TIMEOUT_S)
    provision_deadline_task.apply_async(args=[instance_id], countdown=settings.MQ_PROVISION_TIMEOUT_S)
    return "waiting"


@shared_task(acks_late=True)
def provision_deadline_task(instance_id: int) -> bool:
    from brokers.services import provisioning

    return provisioning.instance_provision_fail(
        instance_id=instance_id, reason=f"no node applied it within {settings.MQ_PROVISION_TIMEOUT_S:.0f}s"
    )


@shared_task(acks_late=True)
def delete_instance_task(instance_id: int) -> bool:
    from brokers.services import provisioning

    return provisioning.instance_remove(instance_id=instance_id)


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=3)
def start_node_task(node_id: int) -> int:
    from brokers.services import provisioning

    return provisioning.node_start(node_id=node_id)


@shared_task(acks_late=True)
def stop_node_task(node_id: int) -> bool:
    from brokers.services import provisioning

    return provisioning.node_stop(node_id=node_id)


@shared_task(acks_late=True)
def restart_node_task(node_id: int) -> int:
    from brokers.services import provisioning

    return provisioning.node_restart(node_id=node_id)


@shared_task
def check_node_health_task() -> dict[str, list[int]]:
    from brokers.services import provisioning

    return provisioning.nodes_check_health()
