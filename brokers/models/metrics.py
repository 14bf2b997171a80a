"""Metrics storage: one row per (resolution, minute/hour bucket, node, namespace, topic, group,
metric). The payload the node agent sends and the meaning of each metric are in
``docs/metrics-and-alerting.md``; ingestion is :mod:`brokers.metrics_ingest`.

* Counters (``messages_in``...) are stored as the *delta* over the bucket in ``value``;
  ``max_value`` repeats it. Roll-ups sum them.
* Gauges (``lag_messages``...) keep the *last* sample of the bucket in ``value`` and the
  largest in ``max_value``. Roll-ups keep the last minute's value and the max of the maxima.

Rows are per node (a topic served by two nodes has two rows per minute); readers aggregate over
nodes (:mod:`brokers.services.metrics`). Node-level metrics (disk, connections, store positions)
have an empty ``namespace`` and no instance.
"""
from __future__ import annotations

from django.db import models

__all__ = ["CounterCursor", "MetricPoint", "Resolution"]


class Resolution(models.TextChoices):
    MINUTE = "1m", "1 minute"
    HOUR = "1h", "1 hour"


class MetricPoint(models.Model):
    ORGANISATION_LOOKUP = "instance__organisation"

    resolution = models.CharField(max_length=2, choices=Resolution.choices)
    bucket = models.DateTimeField(help_text="Start of the minute/hour (UTC).")
    node = models.CharField(max_length=128, help_text="The reporting node's name.")
    namespace = models.CharField(max_length=64, blank=True, help_text="Empty for node-level metrics.")
    instance = models.ForeignKey(
        "tenants.Instance", null=True, blank=True, on_delete=models.CASCADE, related_name="metric_points"
    )
    topic = models.CharField(max_length=127, blank=True)
    group = models.CharField(max_length=127, blank=True)
    metric = models.CharField(max_length=48)
    value = models.BigIntegerField(help_text="Counter: delta over the bucket. Gauge: last sample.")
    max_value = models.BigIntegerField(help_text="Counter: same as value. Gauge: largest sample.")
    samples = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["bucket", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["resolution", "bucket", "node", "namespace", "topic", "group", "metric"],
                name="uniq_metric_point",
            )
        ]
        indexes = [
            models.Index(fields=["instance", "resolution", "metric", "bucket"], name="metric_instance_series"),
            models.Index(fields=["resolution", "bucket"], name="metric_retention"),
        ]

    def __str__(self) -> str:
        return f"{self.metric}[{self.namespace}/{self.topic}/{self.group}]@{self.node} {self.bucket:%Y-%m-%d %H:%M}"


class CounterCursor(models.Model):
    """The last cumulative value seen of one counter of one node, to turn the next report into a
    delta. ``boot_id`` changes when the node process restarts (its counters start from zero)."""

    node = models.CharField(max_length=128)
    namespace = models.CharField(max_length=64, blank=True)
    topic = models.CharField(max_length=127, blank=True)
    group = models.CharField(max_length=127, blank=True)
    metric = models.CharField(max_length=48)
    boot_id = models.CharField(max_length=64, blank=True)
    value = models.BigIntegerField()
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["node", "namespace", "topic", "group", "metric"], name="uniq_counter_cursor"
            )
        ]
