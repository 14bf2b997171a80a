"""Plans: the default catalogue and assignment to organisations."""
from __future__ import annotations

from typing import Any, Final

from django.db import transaction

from tenants.errors import ErrorCode, Forbidden, QuotaExceeded
from tenants.models import GiB, MiB, Instance, InstanceStatus, Organisation, Plan
from tenants.services.audit import Actor, audit_record, notify_instance_changed, snapshot

DEFAULT_PLAN_CODE: Final = "free"

DEFAULT_PLANS: Final[tuple[dict[str, Any], ...]] = (
    dict(
        code="free", name="Free", self_service=True, max_instances=1, topics_per_instance=10,
        groups_per_instance=10, credentials_per_instance=5, send_tps=100, receive_tps=200,
        storage_bytes=1 * GiB, retention_hours=72, max_message_bytes=4 * MiB, dedicated_cluster=False,
        org_send_tps_budget=100, org_storage_budget_bytes=1 * GiB,
    ),
    dict(
        code="standard", name="Standard", self_service=True, max_instances=5, topics_per_instance=200,
        groups_per_instance=200, credentials_per_instance=50, send_tps=2_000, receive_tps=4_000,
        storage_bytes=50 * GiB, retention_hours=168, max_message_bytes=4 * MiB, dedicated_cluster=False,
        org_send_tps_budget=5_000, org_storage_budget_bytes=200 * GiB,
    ),
    dict(
        code="dedicated", name="Dedicated", self_service=False, max_instances=20, topics_per_instance=1_000,
        groups_per_instance=1_000, credentials_per_instance=200, send_tps=20_000, receive_tps=40_000,
        storage_bytes=1024 * GiB, retention_hours=720, max_message_bytes=8 * MiB, dedicated_cluster=True,
        org_send_tps_budget=100_000, org_storage_budget_bytes=10 * 1024 * GiB,
    ),
)


@transaction.atomic
def plans_ensure_defaults() -> list[Plan]:
    """Create the default plans that are missing (idempotent; operators' edits are kept)."""
    plans = []
    for spec in DEFAULT_PLANS:
        plan, _ = Plan.objects.get_or_create(code=spec["code"], defaults={k: v for k, v in spec.items() if k != "code"})
        plans.append(plan)
    return plans


def plan_get_default() -> Plan:
    """The plan new organisations start on (created on first use)."""
    plan = Plan.objects.filter(code=DEFAULT_PLAN_CODE).first()
    if plan is None:
        plans_ensure_defaults()
        plan = Plan.objects.get(code=DEFAULT_PLAN_CODE)
    return plan


def _check_usage_fits(organisation: Organisation, plan: Plan) -> None:
    """Refuse a plan the organisation's live instances would already overrun."""
    live = list(Instance.objects.filter(organisation=organisation).exclude(status=InstanceStatus.DELETING))
    if len(live) > plan.max_instances:
        raise QuotaExceeded(quota="max_instances", limit=plan.max_instances, current=len(live))
    send = sum(i.send_tps for i in live)
    if send > plan.org_send_tps_budget:
        raise QuotaExceeded(quota="org_send_tps_budget", limit=plan.org_send_tps_budget, current=send)
    storage = sum(i.storage_bytes for i in live)
    if storage > plan.org_storage_budget_bytes:
        raise QuotaExceeded(quota="org_storage_budget_bytes", limit=plan.org_storage_budget_bytes, current=storage)
    for inst in live:
        for field in ("send_tps", "receive_tps", "storage_bytes", "retention_hours", "max_message_bytes"):
            if getattr(inst, field) > getattr(plan, field):
                raise QuotaExceeded(quota=field, limit=getattr(plan, field), current=getattr(inst, field))
        for quota, related in (
            ("topics_per_instance", inst.topics),
            ("groups_per_instance", inst.groups),
            ("credentials_per_instance", inst.credentials.filter(revoked_at__isnull=True)),
        ):
            count = related.count()
            if count > getattr(plan, quota):
                raise QuotaExceeded(quota=quota, limit=getattr(plan, quota), current=count)


@transaction.atomic
def organisation_plan_assign(*, organisation: Organisation, plan: Plan, actor: Actor, operator: bool) -> Organisation:
    """Move an organisation to ``plan``. Operators (staff) may assign any plan; owners only
    self-service plans. Refused with ``quota_exceeded`` when current usage would not fit."""
    if not operator and not plan.self_service:
        raise Forbidden("Only platform operators can assign this plan.", code=ErrorCode.PLAN_NOT_SELF_SERVICE)
    organisation = Organisation.objects.select_for_update().get(pk=organisation.pk)
    _check_usage_fits(organisation, plan)
    before = snapshot(organisation)
    organisation.plan = plan
    organisation.save(update_fields=["plan"])
    audit_record(actor=actor, organisation=organisation, obj=organisation, action="plan_assign",
                 before=before, after=snapshot(organisation))
    for instance_id in organisation.instances.exclude(status=InstanceStatus.DELETING).values_list("pk", flat=True):
        notify_instance_changed(instance_id)
    return organisation
