"""Instances: creation within quotas, quota overrides, status, deletion.

Quota rule (docs/tenancy.md): an instance's per-instance limits (send/receive TPS, storage,
retention, message size) default to the plan's and may be set lower, never higher; across the
organisation, the *sum* of live instances' send TPS and storage must fit the plan's organisation
budgets. Instances in ``deleting`` status no longer count.
"""
from __future__ import annotations

import base64
import secrets
from typing import Any, Final

from django.db import transaction

from tenants.errors import Conflict, ErrorCode, InvalidInput, QuotaExceeded
from tenants.models import Instance, InstanceStatus, NamespaceReservation, Organisation
from tenants.services.audit import Actor, audit_record, notify_instance_changed, notify_instance_created, snapshot

QUOTA_FIELDS: Final = ("send_tps", "receive_tps", "storage_bytes", "retention_hours", "max_message_bytes")
_BUDGETS: Final = (("send_tps", "org_send_tps_budget"), ("storage_bytes", "org_storage_budget_bytes"))


def _new_namespace() -> str:
    """``mq-`` + 16 lowercase base32 characters (80 random bits), reserved forever."""
    while True:
        namespace = "mq-" + base64.b32encode(secrets.token_bytes(10)).decode().lower()
        if not NamespaceReservation.objects.filter(namespace=namespace).exists():
            NamespaceReservation.objects.create(namespace=namespace)
            return namespace


def _live_instances(organisation: Organisation) -> Any:
    return Instance.objects.filter(organisation=organisation).exclude(status=InstanceStatus.DELETING)


def _lock_organisation(organisation: Organisation) -> Organisation:
    """Serialise quota decisions of one organisation (row lock; no-op on SQLite)."""
    return Organisation.objects.select_related("plan").select_for_update().get(pk=organisation.pk)


def _resolve_quotas(organisation: Organisation, requested: dict[str, int | None], current: dict[str, int] | None) -> dict[str, int]:
    """Merge requested overrides with current/plan values and check each against the plan."""
    plan = organisation.plan
    quotas: dict[str, int] = {}
    for field in QUOTA_FIELDS:
        value = requested.get(field)
        if value is None:
            value = current[field] if current else getattr(plan, field)
        limit = getattr(plan, field)
        if value < 1:
            raise InvalidInput(field, "must be at least 1.", reason_code="min_value")
        if value > limit:
            raise QuotaExceeded(quota=field, limit=limit, current=value)
        quotas[field] = value
    return quotas


def _check_budgets(organisation: Organisation, quotas: dict[str, int], *, exclude_pk: int | None) -> None:
    live = _live_instances(organisation)
    if exclude_pk is not None:
        live = live.exclude(pk=exclude_pk)
    others = list(live.values(*QUOTA_FIELDS))
    for field, budget_field in _BUDGETS:
        used = sum(row[field] for row in others)
        budget = getattr(organisation.plan, budget_field)
        if used + quotas[field] > budget:
            raise QuotaExceeded(quota=budget_field, limit=budget, current=used, requested=quotas[field])


@transaction.atomic
def instance_create(
    *, organisation: Organisation, name: str, actor: Actor, description: str = "", **overrides: int | None
) -> Instance:
    """Create an instance in ``provisioning`` status with a fresh namespace; the fleet picks it up
    through ``instance_created`` and fills in the endpoint."""
    organisation = _lock_organisation(organisation)
    plan = organisation.plan
    count = _live_instances(organisation).count()
    if count >= plan.max_instances:
        raise QuotaExceeded(quota="max_instances", limit=plan.max_instances, current=count)
    if _live_instances(organisation).filter(name=name).exists():
        raise Conflict(f"An instance named {name!r} already exists.", code=ErrorCode.ALREADY_EXISTS,
                       details={"field": "name"})
    quotas = _resolve_quotas(organisation, overrides, None)
    _check_budgets(organisation, quotas, exclude_pk=None)
    instance = Instance.objects.create(
        organisation=organisation, name=name, description=description, namespace=_new_namespace(), **quotas
    )
    audit_record(actor=actor, organisation=organisation, obj=instance, action="create", after=snapshot(instance))
    notify_instance_created(instance.pk)
    notify_instance_changed(instance.pk)
    return instance


def ensure_instance_mutable(instance: Instance) -> None:
    """Refuse changes under an instance that is being deleted."""
    if instance.status == InstanceStatus.DELETING:
        raise Conflict("The instance is being deleted.", code=ErrorCode.INSTANCE_DELETING)


@transaction.atomic
def instance_update(*, instance: Instance, actor: Actor, description: str | None = None, **overrides: int | None) -> Instance:
    """Change the description and/or the per-instance quotas (within the plan and budgets)."""
    ensure_instance_mutable(instance)
    organisation = _lock_organisation(instance.organisation)
    before = snapshot(instance)
    quotas = _resolve_quotas(organisation, overrides, {f: getattr(instance, f) for f in QUOTA_FIELDS})
    _check_budgets(organisation, quotas, exclude_pk=instance.pk)
    lowered_retention = quotas["retention_hours"] < instance.retention_hours
    for field, value in quotas.items():
        setattr(instance, field, value)
    if description is not None:
        instance.description = description
    instance.save(update_fields=[*QUOTA_FIELDS, "description", "updated_at"])
    if lowered_retention:  # topics never keep messages longer than their instance
        instance.topics.filter(retention_hours__gt=instance.retention_hours).update(retention_hours=instance.retention_hours)
    after = snapshot(instance)
    if after != before:
        audit_record(actor=actor, organisation=organisation, obj=instance, action="update", before=before, after=after)
        notify_instance_changed(instance.pk)
    return instance


@transaction.atomic
def instance_delete(*, instance: Instance, actor: Actor) -> Instance:
    """Mark the instance ``deleting``. The fleet tears the namespace down and then removes the row;
    the namespace is never handed out again."""
    if instance.status == InstanceStatus.DELETING:
        return instance
    before = snapshot(instance)
    instance.status = InstanceStatus.DELETING
    instance.save(update_fields=["status", "updated_at"])
    audit_record(actor=actor, organisation=instance.organisation, obj=instance, action="delete",
                 before=before, after=snapshot(instance))
    notify_instance_changed(instance.pk)
    return instance


@transaction.atomic
def instance_set_status(*, instance: Instance, status: str, endpoint: str | None = None, message: str = "",
                        actor: Actor) -> Instance:
    """Used by the broker fleet: record provisioning progress (``ready`` needs an endpoint)."""
    if status == InstanceStatus.READY and not (endpoint or instance.endpoint):
        raise InvalidInput("endpoint", "a ready instance needs an endpoint.")
    before = snapshot(instance)
    instance.status = status
    instance.status_message = message
    if endpoint is not None:
        instance.endpoint = endpoint
    instance.save(update_fields=["status", "status_message", "endpoint", "updated_at"])
    audit_record(actor=actor, organisation=instance.organisation, obj=instance, action="status",
                 before=before, after=snapshot(instance))
    return instance
