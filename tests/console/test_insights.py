"""Usage, dashboard and consumer-group pages: figures come from the services and the metrics the
nodes report (fed here through the real ingestion entry point)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from brokers.metrics_ingest import ingest
from tenants import services
from tenants.models import Instance
from tests.console.conftest import browser

pytestmark = pytest.mark.django_db


def _report(namespace: str) -> None:
    now = timezone.now().replace(second=0, microsecond=0)
    payload: dict[str, Any] = {"boot_id": "b", "namespaces": {namespace: {
        "storage_bytes": 900 * 1024 * 1024, "topics": {"orders": {"messages_in": 0}},
        "groups": {"billing": {"dlq_messages": 3, "topics": {"orders": {"lag_messages": 42, "oldest_age_seconds": 17}}}},
    }}}
    ingest("node-a", payload, now=now - timedelta(minutes=2))
    payload["namespaces"][namespace]["topics"]["orders"]["messages_in"] = 120
    ingest("node-a", payload, now=now - timedelta(minutes=1))
    payload["namespaces"][namespace]["topics"]["orders"]["messages_in"] = 150
    ingest("node-a", payload, now=now)


@pytest.fixture
def instance(tenant: Any) -> Instance:
    instance = services.instance_create(organisation=tenant.organisation, name="prod", actor=services.SYSTEM)
    services.topic_create(instance=instance, name="orders", actor=services.SYSTEM)
    services.group_create(instance=instance, name="billing", actor=services.SYSTEM)
    return instance


def test_usage_shows_how_close_each_limit_is(tenant: Any, plans: Any) -> None:
    free = next(p for p in plans if p.code == "free")
    tenant.organisation.plan = free
    tenant.organisation.save(update_fields=["plan"])
    instance = services.instance_create(organisation=tenant.organisation, name="prod", actor=services.SYSTEM)
    for n in range(8):
        services.topic_create(instance=instance, name=f"t{n}", actor=services.SYSTEM)
    _report(instance.namespace)
    body = browser(tenant.users["viewer"]).get("/usage/").content.decode()
    assert "Instances</th>\n<td>1 of 1</td>" in body and 'aria-valuenow="100"' in body and "at limit" in body
    assert "<td>8 of 10</td>" in body and 'aria-label="Topics: 80% used"' in body
    assert "900.0\xa0MB of 1.0\xa0GB" in body  # storage from the last report against the quota


def test_dashboard_and_summary_fragment(tenant: Any, other_tenant: Any, instance: Instance) -> None:
    _report(instance.namespace)
    client = browser(tenant.users["viewer"])
    body = client.get(f"/instances/{instance.pk}/metrics/").content.decode()
    assert f'data-api="/api/v1/instances/{instance.pk}/metrics/"' in body and "uPlot.iife.min.js" in body
    fragment = client.get(f"/instances/{instance.pk}/metrics/summary/").content.decode()
    assert 'hx-trigger="every 10s"' in fragment and "<td>120</td>" in fragment and "<td>42</td>" in fragment
    assert browser(other_tenant.users["owner"]).get(f"/instances/{instance.pk}/metrics/summary/").status_code == 404


def test_group_lag_and_reset_preview(tenant: Any, instance: Instance) -> None:
    _report(instance.namespace)
    group = instance.groups.get()
    client = browser(tenant.users["viewer"])
    body = client.get(f"/instances/{instance.pk}/groups/{group.pk}/").content.decode()
    assert "<td>42</td><td>17</td>" in body and "did not answer (The instance is not placed on a broker node yet.)" in body
    since = (timezone.now() - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M")
    preview = client.get(f"/instances/{instance.pk}/groups/{group.pk}/", {"topic": "orders", "timestamp": since})
    assert "<strong>150</strong> message(s) were sent to" in preview.content.decode()
