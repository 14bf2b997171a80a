"""Ingestion of node reports: counters become per-minute deltas (restarts handled), gauges keep
last/max, unknown namespaces are dropped; hourly roll-up and retention."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings

from brokers.metrics_ingest import ingest
from brokers.models import CounterCursor, MetricPoint
from brokers.services.metrics import metric_series, metrics_purge, metrics_rollup
from tests.conftest import create_instance
from tenants.models import Instance

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)


def report(ns: str, *, boot: str = "boot-1", messages_in: int = 0, bytes_in: int = 0, lag: int | None = None,
           age: int | None = None, storage: int | None = None, throttled: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"topics": {"orders": {"messages_in": messages_in, "bytes_in": bytes_in}}}
    if storage is not None:
        body["storage_bytes"] = storage
    if throttled is not None:
        body["throttled_send"] = throttled
    if lag is not None or age is not None:
        body["groups"] = {"billing": {"topics": {"orders": {"lag_messages": lag or 0, "oldest_age_seconds": age or 0}}}}
    return {"type": "metrics", "boot_id": boot, "node": {"disk_used_bytes": 10, "disk_free_bytes": 90},
            "namespaces": {ns: body}}


@pytest.fixture
def instance(tenant) -> Instance:
    return Instance.objects.get(pk=create_instance(tenant.owner, "prod")["id"])


def points(metric: str, **filters: Any) -> list[tuple[datetime, int, int]]:
    rows = MetricPoint.objects.filter(metric=metric, resolution=filters.pop("resolution", "1m"), **filters)
    return list(rows.order_by("bucket").values_list("bucket", "value", "max_value"))


def test_counters_become_deltas_per_minute(instance) -> None:
    ns = instance.namespace
    ingest("node-a", report(ns, messages_in=100, bytes_in=1000), now=T0)
    ingest("node-a", report(ns, messages_in=130, bytes_in=1300), now=T0 + timedelta(seconds=20))
    ingest("node-a", report(ns, messages_in=150, bytes_in=1500), now=T0 + timedelta(seconds=65))
    minute = T0.replace(second=0)
    assert points("messages_in", instance=instance, topic="orders") == [
        (minute, 130, 130), (minute + timedelta(minutes=1), 20, 20)]
    assert points("bytes_in", instance=instance)[1][1] == 200
    # node-level metrics have no instance
    assert MetricPoint.objects.filter(metric="disk_used_bytes", instance=None, node="node-a").count() == 2


def test_counter_reset_on_restart(instance) -> None:
    ns = instance.namespace
    ingest("node-a", report(ns, messages_in=500), now=T0)
    ingest("node-a", report(ns, messages_in=520), now=T0 + timedelta(seconds=10))
    # process restarted: new boot id, counter back near zero
    ingest("node-a", report(ns, boot="boot-2", messages_in=7), now=T0 + timedelta(seconds=20))
    # a restart we missed the boot id of (same id, value went down) is also a reset
    ingest("node-a", report(ns, boot="boot-2", messages_in=9), now=T0 + timedelta(seconds=30))
    ingest("node-a", report(ns, boot="boot-2", messages_in=3), now=T0 + timedelta(seconds=40))
    assert points("messages_in", instance=instance) == [(T0.replace(second=0), 500 + 20 + 7 + 2 + 3, 532)]
    cursor = CounterCursor.objects.get(node="node-a", namespace=ns, topic="orders", metric="messages_in")
    assert (cursor.value, cursor.boot_id) == (3, "boot-2")


def test_gauges_keep_last_and_max_and_nodes_are_combined(instance) -> None:
    ns = instance.namespace
    ingest("node-a", report(ns, lag=40, age=100), now=T0)
    ingest("node-a", report(ns, lag=90, age=30), now=T0 + timedelta(seconds=10))
    ingest("node-a", report(ns, lag=10, age=20), now=T0 + timedelta(seconds=20))
    ingest("node-b", report(ns, lag=5, age=50), now=T0 + timedelta(seconds=25))
    assert points("lag_messages", instance=instance, node="node-a") == [(T0.replace(second=0), 10, 90)]
    start, end = T0 - timedelta(hours=1), T0 + timedelta(hours=1)
    # lag sums over nodes; the oldest message is the oldest of any node
    assert metric_series(instance=instance, metric="lag_messages", resolution="1m", start=start, end=end,
                         group="billing") == [(T0.replace(second=0), 15)]
    assert metric_series(instance=instance, metric="oldest_age_seconds", resolution="1m", start=start,
                         end=end)[0][1] == 50


def test_unknown_namespace_and_malformed_entries_are_dropped(instance) -> None:
    payload = report(instance.namespace, messages_in=5)
    payload["namespaces"]["mq-nobodyhasthis00"] = {"topics": {"x": {"messages_in": 9}}}
    payload["namespaces"][instance.namespace]["topics"]["bad"] = {"messages_in": "many", "bytes_in": -3}
    payload["namespaces"][instance.namespace]["groups"] = ["not", "a", "dict"]
    kept = ingest("node-a", payload, now=T0)
    assert kept == 4  # messages_in + bytes_in of orders, disk used + free
    assert not MetricPoint.objects.filter(namespace="mq-nobodyhasthis00").exists()
    assert not MetricPoint.objects.filter(topic="bad").exists()


def test_rollup_to_hours_and_retention(instance) -> None:
    ns = instance.namespace
    hour = T0.replace(minute=0, second=0)
    total = 0
    for minute in range(0, 120, 10):  # two hours, a report every 10 minutes
        total += minute
        ingest("node-a", report(ns, messages_in=total, lag=minute, storage=1000 + minute),
               now=hour + timedelta(minutes=minute))
    written = metrics_rollup(now=hour + timedelta(minutes=125))
    assert written > 0
    assert metrics_rollup(now=hour + timedelta(minutes=125)) == written  # idempotent
    hours = points("messages_in", instance=instance, resolution="1h")
    minutes_sum_first = sum(v for b, v, _ in points("messages_in", instance=instance) if b < hour + timedelta(hours=1))
    assert [(b, v) for b, v, _ in hours] == [(hour, minutes_sum_first), (hour + timedelta(hours=1), total - minutes_sum_first)]
    lag_hours = points("lag_messages", instance=instance, resolution="1h")
    assert lag_hours == [(hour, 50, 50), (hour + timedelta(hours=1), 110, 110)]  # last of the hour, max
    series = metric_series(instance=instance, metric="messages_in", resolution="1h",
                           start=hour, end=hour + timedelta(hours=2))
    assert sum(v for _, v in series) == total

    # 25 hours later the minute rows are gone, the hour rows stay; 31 days later those go too
    with override_settings(MQ_METRICS_MINUTE_RETENTION_HOURS=24, MQ_METRICS_HOUR_RETENTION_DAYS=30):
        deleted = metrics_purge(now=hour + timedelta(hours=26))
        assert deleted["minute"] > 0 and deleted["hour"] == 0
        assert not MetricPoint.objects.filter(resolution="1m").exists()
        assert MetricPoint.objects.filter(resolution="1h").exists()
        assert not CounterCursor.objects.exists()
        assert metrics_purge(now=hour + timedelta(days=31, hours=3))["hour"] > 0
        assert not MetricPoint.objects.exists()
