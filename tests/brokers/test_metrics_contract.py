"""Contract between the node and the control plane's metrics ingestion: a report built by the
node's MetricsReporter from a real store and delivery engine with traffic, sent through JSON as
on the wire, becomes the per-minute rows docs/metrics-and-alerting.md §1 describes."""
from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from brokers.metrics_ingest import ingest
from brokers.models import MetricPoint
from brokers.node.agent.metrics_report import MetricsReporter
from brokers.node.config import parse_desired_state
from brokers.node.delivery import ConsumerGroup, DeliveryConfig, DeliveryEngine
from brokers.node.metrics import NodeMetrics
from brokers.node.store import AppendStatus, MessageStore, NewMessage, StoreConfig
from tests.brokers.node.conftest import default_state
from tests.conftest import create_instance
from tenants.models import Instance

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 10, 0, 5, tzinfo=UTC)
STORED_AT = 1_800_000_000.0  # node clock (s) when the first messages were stored


@pytest.fixture
def instance(tenant) -> Instance:  # type: ignore[no-untyped-def]
    return Instance.objects.get(pk=create_instance(tenant.owner, "prod")["id"])


@dataclass
class Traffic:
    reports: list[dict[str, Any]]
    end_offset: int
    boot_ids: list[str]


def _state(ns: str) -> Any:
    doc = default_state()
    spec = doc["namespaces"].pop("ns1")
    spec["topics"] = {"orders": {"type": "NORMAL", "queues": 1}}
    spec["groups"] = {"billing": {}, "idle": {}}
    doc["namespaces"] = {ns: spec}
    return parse_desired_state(doc)


async def _traffic(ns: str, root: Path) -> Traffic:
    """5 messages on ns%orders (3 stored at STORED_AT, 2 ten seconds later); group billing
    receives the first 3, acks 2 and dead-letters 1; reported at STORED_AT + 45 s. Then one more
    message and a second report; then a 'restarted' reporter (new boot id)."""
    now = [STORED_AT]
    store = await MessageStore.open(StoreConfig(root=root / "store", segment_bytes=1024 * 1024,
                                                durability="async",
                                                clock_ms=lambda: int(now[0] * 1000)))
    engine = DeliveryEngine(store, state_path=root / "delivery.sqlite3", clock=lambda: now[0],
                            config=DeliveryConfig())
    await engine.start(background=False)
    metrics = NodeMetrics()
    state = _state(ns)
    topic = f"{ns}%orders"

    async def send(bodies: list[bytes]) -> None:
        res = await store.append_many([NewMessage(topic, 0, b) for b in bodies])
        assert all(r.status is AppendStatus.OK for r in res)
        metrics.sent(ns, "orders", len(bodies), sum(map(len, bodies)))

    def reporter(metrics: NodeMetrics) -> MetricsReporter:
        return MetricsReporter(metrics=metrics, store=store, delivery=engine, state=lambda: state,
                               data_dir=root, connections=lambda: 4, clock=lambda: now[0])

    try:
        await send([b"a" * 100, b"b" * 100, b"c" * 100])
        now[0] += 10
        await send([b"d" * 100, b"e" * 100])
        billing = ConsumerGroup(namespace=ns, name="billing")
        got = await engine.receive(group=billing, topic=topic, client_id="c1", max_messages=3,
                                   invisible_ms=30_000)
        assert [d.message.queue_offset for d in got] == [0, 1, 2]
        metrics.delivered(ns, "orders", 3, 300)
        for d in got[:2]:
            await engine.ack(group=billing, topic=topic, receipt_handle=d.receipt_handle)
        await engine.forward_to_dlq(group=billing, topic=topic, receipt_handle=got[2].receipt_handle)
        metrics.throttle(ns, "throttled")
        metrics.throttle(ns, "throttled")
        metrics.throttle(ns, "receive")
        now[0] = STORED_AT + 45
        first = reporter(metrics)
        reports = [await first.report()]
        await send([b"f" * 50])
        reports.append(await first.report())
        restarted = NodeMetrics()  # what a restarted node reports: counters from zero, new boot id
        second = reporter(restarted)
        restarted.sent(ns, "orders", 1, 10)
        reports.append(await second.report())
        return Traffic([json.loads(json.dumps(r)) for r in reports], store.end_offset,
                       [first.boot_id, second.boot_id])
    finally:
        await engine.stop()
        await store.close()


def _value(metric: str, **filters: Any) -> list[int]:
    rows = MetricPoint.objects.filter(metric=metric, resolution="1m", **filters).order_by("bucket")
    return list(rows.values_list("value", flat=True))


def test_a_real_node_report_becomes_the_documented_rows(instance: Instance, tmp_path: Path) -> None:
    ns = instance.namespace
    traffic = asyncio.run(_traffic(ns, tmp_path))
    first = traffic.reports[0]
    assert first["boot_id"] == traffic.boot_ids[0] and first["boot_id"] != traffic.boot_ids[1]
    body = copy.deepcopy(first["namespaces"][ns])

    kept = ingest("node-a", first, now=T0)
    assert kept > 0
    # counters of the topic (cumulative since start: first sight counts all of it)
    assert _value("messages_in", instance=instance, topic="orders", group="") == [5]
    assert _value("bytes_in", instance=instance, topic="orders") == [500]
    assert _value("messages_out", instance=instance, topic="orders") == [3]
    assert _value("bytes_out", instance=instance, topic="orders") == [300]
    assert _value("throttled_send", instance=instance) == [2]
    assert _value("throttled_receive", instance=instance) == [1]
    # group gauges: offsets 3 and 4 unconsumed, the oldest stored 35 s before the report
    assert _value("lag_messages", instance=instance, group="billing", topic="orders") == [2]
    assert _value("oldest_age_seconds", instance=instance, group="billing", topic="orders") == [35]
    assert _value("dlq_messages", instance=instance, group="billing", topic="") == [1]
    assert _value("dlq_messages", instance=instance, group="idle") == [0]
    assert not MetricPoint.objects.filter(group="idle", metric="lag_messages").exists()
    # storage: every record of the namespace (orders + its DLQ copy) at the time of the report
    assert body["storage_bytes"] > 600
    assert _value("storage_bytes", instance=instance) == [body["storage_bytes"]]
    # node-level rows (no instance)
    assert _value("connections", instance=None, node="node-a") == [4]
    assert _value("commitlog_max_offset", instance=None, node="node-a") == [body["storage_bytes"]]
    assert _value("flushed_offset", instance=None, node="node-a")[0] <= body["storage_bytes"]
    assert _value("commitlog_min_offset", instance=None, node="node-a") == [0]
    assert _value("disk_free_bytes", instance=None, node="node-a")[0] > 0

    # the next minute: one more message -> delta 1, lag 3, storage grows
    ingest("node-a", traffic.reports[1], now=T0 + timedelta(minutes=1))
    assert _value("messages_in", instance=instance, topic="orders") == [5, 1]
    assert _value("bytes_in", instance=instance, topic="orders") == [500, 50]
    assert _value("lag_messages", instance=instance, group="billing") == [2, 3]
    second_storage = traffic.reports[1]["namespaces"][ns]["storage_bytes"]
    assert second_storage == traffic.end_offset > body["storage_bytes"]
    assert _value("storage_bytes", instance=instance) == [body["storage_bytes"], second_storage]

    # a restarted node (new boot id, counters from zero): its value is the whole delta
    ingest("node-a", traffic.reports[2], now=T0 + timedelta(minutes=2))
    assert _value("messages_in", instance=instance, topic="orders") == [5, 1, 1]
    assert _value("bytes_in", instance=instance, topic="orders") == [500, 50, 10]
