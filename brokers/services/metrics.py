"""Metrics: ingestion of node reports into per-minute rows, hourly roll-ups, retention, and the
selectors the API and the alert evaluator read.

Payload (documented in docs/metrics-and-alerting.md)::

    {"type": "metrics", "boot_id": "<changes on every node start>", "ts": 1700000000.0,
     "node": {"disk_used_bytes": 1, "disk_free_bytes": 2, "connections": 3,
              "store": {"commitlog_min_offset": 0, "commitlog_max_offset": 9, "flushed_offset": 9}},
     "namespaces": {"mq-...": {
         "storage_bytes": 1, "throttled_send": 0, "throttled_receive": 0,
         "topics": {"orders": {"messages_in": 1, "bytes_in": 1, "messages_out": 1, "bytes_out": 1}},
         "groups": {"billing": {"dlq_messages": 0,
                                "topics": {"orders": {"lag_messages": 0, "oldest_age_seconds": 0}}}}}}}

Counters are cumulative since the node process started; a smaller value than last time, or a new
``boot_id``, means the node restarted and the new value is the whole delta. Buckets use the
control plane's clock (``now``), not the node's ``ts``, so a skewed node clock cannot scatter rows.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Greatest
from django.utils import timezone

from brokers.models.metrics import CounterCursor, MetricPoint, Resolution
from tenants.models import Instance

logger = logging.getLogger(__name__)

COUNTERS: Final = frozenset({
    "messages_in", "messages_out", "bytes_in", "bytes_out", "throttled_send", "throttled_receive",
})
#: gauge -> how readers combine the rows of several nodes in one bucket
GAUGES: Final[dict[str, str]] = {
    "lag_messages": "sum", "oldest_age_seconds": "max", "dlq_messages": "sum", "storage_bytes": "sum",
    "disk_used_bytes": "sum", "disk_free_bytes": "sum", "connections": "sum",
    "commitlog_min_offset": "max", "commitlog_max_offset": "max", "flushed_offset": "max",
}
METRICS: Final = COUNTERS | frozenset(GAUGES)
_TOPIC_METRICS: Final = ("messages_in", "messages_out", "bytes_in", "bytes_out")
_NAMESPACE_METRICS: Final = ("storage_bytes", "throttled_send", "throttled_receive")
_NODE_METRICS: Final = ("disk_used_bytes", "disk_free_bytes", "connections")
_STORE_METRICS: Final = ("commitlog_min_offset", "commitlog_max_offset", "flushed_offset")
_MAX_TEXT: Final = 127


def minute_retention() -> timedelta:
    return timedelta(hours=getattr(settings, "MQ_METRICS_MINUTE_RETENTION_HOURS", 24))


def hour_retention() -> timedelta:
    return timedelta(days=getattr(settings, "MQ_METRICS_HOUR_RETENTION_DAYS", 30))


def floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one series from one report."""

    namespace: str
    topic: str
    group: str
    metric: str
    value: int


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if value != value or value < 0:  # NaN or negative: not a metric value
        return None
    return int(value)


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _MAX_TEXT else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_payload(payload: dict[str, Any]) -> Iterator[Sample]:
    """The samples of a report; malformed entries are skipped (a report is never refused whole)."""
    node = _dict(payload.get("node"))
    for metric in _NODE_METRICS:
        if (value := _int(node.get(metric))) is not None:
            yield Sample("", "", "", metric, value)
    store = _dict(node.get("store"))
    for metric in _STORE_METRICS:
        if (value := _int(store.get(metric))) is not None:
            yield Sample("", "", "", metric, value)
    for namespace, body in _dict(payload.get("namespaces")).items():
        if _name(namespace) is None or not isinstance(body, dict):
            continue
        for metric in _NAMESPACE_METRICS:
            if (value := _int(body.get(metric))) is not None:
                yield Sample(namespace, "", "", metric, value)
        for topic, values in _dict(body.get("topics")).items():
            if _name(topic) is None:
                continue
            for metric in _TOPIC_METRICS:
                if (value := _int(_dict(values).get(metric))) is not None:
                    yield Sample(namespace, topic, "", metric, value)
        for group, gbody in _dict(body.get("groups")).items():
            if _name(group) is None:
                continue
            if (value := _int(_dict(gbody).get("dlq_messages"))) is not None:
                yield Sample(namespace, "", group, "dlq_messages", value)
            for topic, values in _dict(_dict(gbody).get("topics")).items():
                if _name(topic) is None:
                    continue
                for metric in ("lag_messages", "oldest_age_seconds"):
                    if (value := _int(_dict(values).get(metric))) is not None:
                        yield Sample(namespace, topic, group, metric, value)


def node_label(node: Any) -> str:
    """A node's key in metric rows: its name (BrokerNode), or the value itself for strings."""
    return node if isinstance(node, str) else str(getattr(node, "name", None) or node.pk)


def _counter_delta(node: str, sample: Sample, boot_id: str, now: datetime) -> int:
    """Advance the node's cursor of this counter; the delta since the last report."""
    key = dict(node=node, namespace=sample.namespace, topic=sample.topic, group=sample.group, metric=sample.metric)
    cursor = CounterCursor.objects.select_for_update().filter(**key).first()
    if cursor is None:
        # First sight (new node, new topic, or a node silent past the retention): everything the
        # counter holds happened since it appeared, so all of it is the delta.
        try:
            with transaction.atomic():
                CounterCursor.objects.create(**key, boot_id=boot_id, value=sample.value, seen_at=now)
        except IntegrityError:  # a concurrent report of the same node created it: count it there
            return 0
        return sample.value
    if (boot_id and cursor.boot_id and boot_id != cursor.boot_id) or sample.value < cursor.value:
        delta = sample.value  # restarted: counting from zero again
    else:
        delta = sample.value - cursor.value
    cursor.value, cursor.boot_id, cursor.seen_at = sample.value, boot_id or cursor.boot_id, now
    cursor.save(update_fields=["value", "boot_id", "seen_at"])
    return delta


def _upsert(*, bucket: datetime, node: str, instance_id: int | None, sample: Sample, value: int, counter: bool) -> None:
    key = dict(resolution=Resolution.MINUTE, bucket=bucket, node=node, namespace=sample.namespace,
               topic=sample.topic, group=sample.group, metric=sample.metric)
    if counter:
        changes = dict(value=F("value") + value, max_value=F("max_value") + value, samples=F("samples") + 1)
    else:
        changes = dict(value=value, max_value=Greatest(F("max_value"), value), samples=F("samples") + 1)
    if MetricPoint.objects.filter(**key).update(**changes):
        return
    try:
        with transaction.atomic():
            MetricPoint.objects.create(**key, instance_id=instance_id, value=value, max_value=value)
    except IntegrityError:
        MetricPoint.objects.filter(**key).update(**changes)


@transaction.atomic
def metrics_ingest(*, node: Any, payload: dict[str, Any], now: datetime | None = None) -> int:
    """Store one report of ``node``; returns how many samples were kept. Samples of namespaces no
    instance has (deleted, or not ours) are dropped."""
    now = now or timezone.now()
    label = node_label(node)
    boot_id = str(payload.get("boot_id") or "")[:64]
    bucket = floor_minute(now)
    samples = list(parse_payload(payload))
    namespaces = {s.namespace for s in samples if s.namespace}
    instances = dict(Instance.objects.filter(namespace__in=namespaces).values_list("namespace", "pk"))
    kept = 0
    for sample in samples:
        instance_id = instances.get(sample.namespace)
        if sample.namespace and instance_id is None:
            continue
        counter = sample.metric in COUNTERS
        value = _counter_delta(label, sample, boot_id, now) if counter else sample.value
        _upsert(bucket=bucket, node=label, instance_id=instance_id, sample=sample, value=value, counter=counter)
        kept += 1
    return kept


# --- roll-up and retention ------------------------------------------------------------------


@transaction.atomic
def metrics_rollup(*, now: datetime | None = None, hours_back: int = 2) -> int:
    """(Re)compute the hourly rows of the current hour and the ``hours_back`` before it from the
    minute rows (idempotent: values are set, not added). Returns the number of hour rows written."""
    now = now or timezone.now()
    start = floor_hour(now) - timedelta(hours=hours_back)
    rows: dict[tuple[Any, ...], MetricPoint] = {}
    minutes = MetricPoint.objects.filter(resolution=Resolution.MINUTE, bucket__gte=start).order_by("bucket", "id")
    for point in minutes.iterator():
        hour = floor_hour(point.bucket)
        key = (hour, point.node, point.namespace, point.topic, point.group, point.metric)
        row = rows.get(key)
        if row is None:
            rows[key] = MetricPoint(
                resolution=Resolution.HOUR, bucket=hour, node=point.node, namespace=point.namespace,
                instance_id=point.instance_id, topic=point.topic, group=point.group, metric=point.metric,
                value=point.value, max_value=point.max_value, samples=point.samples,
            )
        elif point.metric in COUNTERS:
            row.value += point.value
            row.max_value += point.max_value
            row.samples += point.samples
        else:  # gauge: last value, max of maxima
            row.value = point.value
            row.max_value = max(row.max_value, point.max_value)
            row.samples += point.samples
    MetricPoint.objects.bulk_create(
        rows.values(), update_conflicts=True,
        unique_fields=["resolution", "bucket", "node", "namespace", "topic", "group", "metric"],
        update_fields=["value", "max_value", "samples", "instance"],
    )
    return len(rows)


@transaction.atomic
def metrics_purge(*, now: datetime | None = None) -> dict[str, int]:
    """Delete minute rows older than the minute retention and hour rows older than the hour one;
    also counter cursors of nodes silent for longer than the minute retention."""
    now = now or timezone.now()
    minute_cut, hour_cut = now - minute_retention(), now - hour_retention()
    deleted_minutes, _ = MetricPoint.objects.filter(resolution=Resolution.MINUTE, bucket__lt=minute_cut).delete()
    deleted_hours, _ = MetricPoint.objects.filter(resolution=Resolution.HOUR, bucket__lt=hour_cut).delete()
    CounterCursor.objects.filter(seen_at__lt=minute_cut).delete()
    return {"minute": deleted_minutes, "hour": deleted_hours}


# --- selectors ------------------------------------------------------------------------------


def _combine(metric: str, values: Iterable[int]) -> int:
    values = list(values)
    return max(values) if GAUGES.get(metric) == "max" else sum(values)


def metric_series(
    *, instance: Instance, metric: str, resolution: str, start: datetime, end: datetime,
    topic: str | None = None, group: str | None = None, field: str = "value",
) -> list[tuple[datetime, int]]:
    """``[(bucket, value)]`` of one metric of an instance, oldest first. Rows of several nodes
    and of several topics/groups (when not filtered) are combined per bucket: counters and most
    gauges are summed, ``oldest_age_seconds`` and offsets take the maximum."""
    rows = MetricPoint.objects.filter(
        instance=instance, resolution=resolution, metric=metric, bucket__gte=start, bucket__lte=end
    )
    if topic is not None:
        rows = rows.filter(topic=topic)
    if group is not None:
        rows = rows.filter(group=group)
    per_bucket: dict[datetime, list[int]] = {}
    for bucket, value in rows.order_by("bucket").values_list("bucket", field):
        per_bucket.setdefault(bucket, []).append(value)
    return [(bucket, _combine(metric, values)) for bucket, values in per_bucket.items()]


def latest_points(*, metric: str, since: datetime, instance: Instance | None = None) -> QuerySet[MetricPoint]:
    """Minute rows of ``metric`` from ``since`` on (for the evaluator and the summary)."""
    rows = MetricPoint.objects.filter(resolution=Resolution.MINUTE, metric=metric, bucket__gte=since)
    if instance is not None:
        rows = rows.filter(instance=instance)
    return rows


def latest_gauge_by(
    *, metric: str, keys: tuple[str, ...], now: datetime, instance: Instance | None = None,
    instance_ids: Iterable[int] | None = None, freshness: timedelta = timedelta(minutes=2),
) -> dict[tuple[Any, ...], int]:
    """Latest value of a gauge per ``keys`` (e.g. ``("instance_id", "group")``), combining nodes
    (each node's latest bucket within ``freshness``)."""
    rows = latest_points(metric=metric, since=floor_minute(now - freshness), instance=instance)
    if instance_ids is not None:
        rows = rows.filter(instance_id__in=list(instance_ids))
    identity = ("node", "namespace", "topic", "group")
    newest: dict[tuple[Any, ...], tuple[tuple[Any, ...], int]] = {}
    for row in rows.order_by("bucket").values("value", *identity, *keys):
        series = tuple(row[k] for k in identity)
        newest[series] = (tuple(row[k] for k in keys), row["value"])  # ordered by bucket: last wins
    combined: dict[tuple[Any, ...], list[int]] = {}
    for key, value in newest.values():
        combined.setdefault(key, []).append(value)
    return {key: _combine(metric, values) for key, values in combined.items()}


def counter_last_minute(
    *, metric: str, keys: tuple[str, ...], now: datetime, instance: Instance | None = None,
    instance_ids: Iterable[int] | None = None,
) -> dict[tuple[Any, ...], int]:
    """Sum of a counter's deltas over the last *complete* minute, per ``keys``."""
    bucket = floor_minute(now) - timedelta(minutes=1)
    rows = MetricPoint.objects.filter(resolution=Resolution.MINUTE, metric=metric, bucket=bucket)
    if instance is not None:
        rows = rows.filter(instance=instance)
    if instance_ids is not None:
        rows = rows.filter(instance_id__in=list(instance_ids))
    totals: dict[tuple[Any, ...], int] = {}
    for row in rows.values("value", *keys):
        key = tuple(row[k] for k in keys)
        totals[key] = totals.get(key, 0) + row["value"]
    return totals


def instance_metrics_summary(*, instance: Instance, now: datetime | None = None) -> dict[str, Any]:
    """Headline figures of an instance: last complete minute's traffic, current storage and
    quota use, and per consumer group lag, oldest message age and DLQ size."""
    now = now or timezone.now()
    traffic = {m: counter_last_minute(metric=m, keys=(), now=now, instance=instance).get((), 0)
               for m in ("messages_in", "messages_out", "bytes_in", "bytes_out", "throttled_send",
                         "throttled_receive")}
    storage = latest_gauge_by(metric="storage_bytes", keys=(), now=now, instance=instance).get((), 0)
    groups: dict[str, dict[str, int]] = {}
    for metric in ("lag_messages", "oldest_age_seconds", "dlq_messages"):
        per_group: dict[str, list[int]] = {}
        for (group,), value in latest_gauge_by(metric=metric, keys=("group",), now=now, instance=instance).items():
            per_group.setdefault(group, []).append(value)
        for group, values in per_group.items():
            if group:
                groups.setdefault(group, {})[metric] = _combine(metric, values)
    return {
        "instance": instance.pk,
        "at": now,
        "last_minute": traffic,
        "send_tps": round(traffic["messages_in"] / 60, 3),
        "storage_bytes": storage,
        "storage_quota_bytes": instance.storage_bytes,
        "storage_used_percent": round(100 * storage / instance.storage_bytes, 2) if instance.storage_bytes else None,
        "groups": [{"group": g, **{m: v.get(m, 0) for m in ("lag_messages", "oldest_age_seconds", "dlq_messages")}}
                   for g, v in sorted(groups.items())],
    }
