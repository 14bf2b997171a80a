"""Topics and consumer groups of an instance, within the plan's per-instance counts."""
from __future__ import annotations

from typing import Any

from django.db import transaction

from tenants.errors import Conflict, ErrorCode, InvalidInput, QuotaExceeded
from tenants.models import ConsumerGroup, Instance, Topic
from tenants.services.audit import Actor, audit_record, notify_instance_changed, snapshot
from tenants.services.instances import ensure_instance_mutable
from tenants.validators import resource_name_problem


def _lock_instance(instance: Instance) -> Instance:
    return Instance.objects.select_related("organisation__plan").select_for_update().get(pk=instance.pk)


def _check_name(name: str) -> None:
    problem = resource_name_problem(name)
    if problem:
        raise InvalidInput("name", f"Name {problem}.", reason_code="invalid_name")


def _check_retention(instance: Instance, retention_hours: int | None) -> int:
    if retention_hours is None:
        return instance.retention_hours
    if retention_hours < 1:
        raise InvalidInput("retention_hours", "must be at least 1.", reason_code="min_value")
    if retention_hours > instance.retention_hours:
        raise QuotaExceeded(quota="retention_hours", limit=instance.retention_hours, current=retention_hours)
    return retention_hours


@transaction.atomic
def topic_create(*, instance: Instance, name: str, actor: Actor, message_type: str = "NORMAL", queue_count: int = 8,
                 retention_hours: int | None = None, description: str = "") -> Topic:
    instance = _lock_instance(instance)
    ensure_instance_mutable(instance)
    _check_name(name)
    limit = instance.organisation.plan.topics_per_instance
    count = instance.topics.count()
    if count >= limit:
        raise QuotaExceeded(quota="topics_per_instance", limit=limit, current=count)
    if instance.topics.filter(name=name).exists():
        raise Conflict(f"A topic named {name!r} already exists.", code=ErrorCode.ALREADY_EXISTS, details={"field": "name"})
    topic = Topic.objects.create(
        instance=instance, name=name, message_type=message_type, queue_count=queue_count,
        retention_hours=_check_retention(instance, retention_hours), description=description,
    )
    audit_record(actor=actor, organisation=instance.organisation, obj=topic, action="create", after=snapshot(topic))
    notify_instance_changed(instance.pk)
    return topic


@transaction.atomic
def topic_update(*, topic: Topic, actor: Actor, queue_count: int | None = None, retention_hours: int | None = None,
                 description: str | None = None) -> Topic:
    """Queues can be added, never removed (messages in a removed queue would be stranded)."""
    ensure_instance_mutable(topic.instance)
    before = snapshot(topic)
    if queue_count is not None:
        if queue_count < topic.queue_count:
            raise InvalidInput("queue_count", "queues can be added but not removed.", reason_code="shrink_refused")
        topic.queue_count = queue_count
    if retention_hours is not None:
        topic.retention_hours = _check_retention(topic.instance, retention_hours)
    if description is not None:
        topic.description = description
    topic.save(update_fields=["queue_count", "retention_hours", "description", "updated_at"])
    after = snapshot(topic)
    if after != before:
        audit_record(actor=actor, organisation=topic.instance.organisation, obj=topic, action="update", before=before, after=after)
        notify_instance_changed(topic.instance_id)
    return topic


@transaction.atomic
def topic_delete(*, topic: Topic, actor: Actor) -> None:
    ensure_instance_mutable(topic.instance)
    audit_record(actor=actor, organisation=topic.instance.organisation, obj=topic, action="delete", before=snapshot(topic))
    instance_id = topic.instance_id
    topic.delete()
    notify_instance_changed(instance_id)


def _check_backoff(values: dict[str, Any]) -> None:
    if values["retry_max_backoff_ms"] < values["retry_initial_backoff_ms"]:
        raise InvalidInput("retry_max_backoff_ms", "must be at least retry_initial_backoff_ms.", reason_code="invalid")


GROUP_FIELDS = ("delivery", "fifo", "max_delivery_attempts", "retry_initial_backoff_ms", "retry_max_backoff_ms",
                "retry_backoff_multiplier", "description")


@transaction.atomic
def group_create(*, instance: Instance, name: str, actor: Actor, **fields: Any) -> ConsumerGroup:
    """Create a consumer group; unspecified settings take RocketMQ's defaults (model defaults)."""
    instance = _lock_instance(instance)
    ensure_instance_mutable(instance)
    _check_name(name)
    limit = instance.organisation.plan.groups_per_instance
    count = instance.groups.count()
    if count >= limit:
        raise QuotaExceeded(quota="groups_per_instance", limit=limit, current=count)
    if instance.groups.filter(name=name).exists():
        raise Conflict(f"A group named {name!r} already exists.", code=ErrorCode.ALREADY_EXISTS, details={"field": "name"})
    group = ConsumerGroup(instance=instance, name=name, **{k: v for k, v in fields.items() if k in GROUP_FIELDS})
    _check_backoff(group.__dict__)
    group.save()
    audit_record(actor=actor, organisation=instance.organisation, obj=group, action="create", after=snapshot(group))
    notify_instance_changed(instance.pk)
    return group


@transaction.atomic
def group_update(*, group: ConsumerGroup, actor: Actor, **fields: Any) -> ConsumerGroup:
    ensure_instance_mutable(group.instance)
    before = snapshot(group)
    for key, value in fields.items():
        if key in GROUP_FIELDS and value is not None:
            setattr(group, key, value)
    _check_backoff(group.__dict__)
    group.save(update_fields=[*GROUP_FIELDS, "updated_at"])
    after = snapshot(group)
    if after != before:
        audit_record(actor=actor, organisation=group.instance.organisation, obj=group, action="update", before=before, after=after)
        notify_instance_changed(group.instance_id)
    return group


@transaction.atomic
def group_delete(*, group: ConsumerGroup, actor: Actor) -> None:
    ensure_instance_mutable(group.instance)
    audit_record(actor=actor, organisation=group.instance.organisation, obj=group, action="delete", before=snapshot(group))
    instance_id = group.instance_id
    group.delete()
    notify_instance_changed(instance_id)
