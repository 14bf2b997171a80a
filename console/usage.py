"""Plan and quota usage: counts from the control plane, storage from the metrics the nodes report.
Read-only; the limits come from the organisation's plan and the instance quotas, the same numbers
the tenants services enforce."""
from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils import timezone

from brokers.services.metrics import latest_gauge_by
from tenants.models import Instance, InstanceStatus, Organisation


@dataclass(frozen=True)
class Meter:
    label: str
    used: int
    limit: int
    unit: str = ""  # "bytes" renders with filesizeformat

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.used / self.limit)) if self.limit else 100

    @property
    def level(self) -> str:
        return "full" if self.percent >= 100 else "warn" if self.percent >= 80 else "ok"


def organisation_usage(organisation: Organisation) -> list[Meter]:
    plan = organisation.plan
    live = Instance.objects.filter(organisation=organisation).exclude(status=InstanceStatus.DELETING)
    quotas = list(live.values_list("send_tps", "storage_bytes"))
    return [
        Meter("Instances", len(quotas), plan.max_instances),
        Meter("Send TPS reserved by instances", sum(q[0] for q in quotas), plan.org_send_tps_budget),
        Meter("Storage reserved by instances", sum(q[1] for q in quotas), plan.org_storage_budget_bytes, "bytes"),
    ]


def instances_usage(organisation: Organisation) -> list[tuple[Instance, list[Meter]]]:
    plan = organisation.plan
    rows = list(
        Instance.objects.filter(organisation=organisation).exclude(status=InstanceStatus.DELETING)
        .annotate(n_topics=Count("topics", distinct=True), n_groups=Count("groups", distinct=True),
                  n_credentials=Count("credentials", filter=Q(credentials__revoked_at__isnull=True), distinct=True))
        .order_by("name")
    )
    storage = latest_gauge_by(metric="storage_bytes", keys=("instance_id",), now=timezone.now(),
                              instance_ids=[i.pk for i in rows])
    return [(i, [
        Meter("Topics", i.n_topics, plan.topics_per_instance),
        Meter("Consumer groups", i.n_groups, plan.groups_per_instance),
        Meter("Credentials", i.n_credentials, plan.credentials_per_instance),
        Meter("Storage used (last report)", storage.get((i.pk,), 0), i.storage_bytes, "bytes"),
    ]) for i in rows]
