"""The node's metrics report, in the format the control plane ingests
(docs/metrics-and-alerting.md §1, parsed by ``brokers.services.metrics.parse_payload``).

Built from the node's real sources:

* counters (cumulative since this process started, hence a fresh ``boot_id`` per process) from
  the Prometheus registry of ``NodeMetrics``: ``mq_messages_in/out``, ``mq_bytes_in/out`` per
  namespace and topic; ``mq_throttled_requests`` with ``quota="throttled"`` (send TPS) and
  ``quota="receive"`` (receive TPS);
* ``storage_bytes`` from the store's per-namespace usage (``MessageStore.usage``);
* per consumer group (clustering groups of the desired state) and per topic on which the group
  has committed offsets: ``lag_messages`` (stored messages at or after the committed offset,
  in-flight ones included) and ``oldest_age_seconds`` (age of the oldest of them, by store time);
  ``dlq_messages`` is the number of messages held in ``%DLQ%<group>``;
* node-wide: disk usage of the data directory's file system, connected clients, commit-log
  positions.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brokers.node.config import DeliveryMode, DesiredState
from brokers.node.delivery import ConsumerGroup, dlq_topic
from brokers.node.metrics import NodeMetrics
from brokers.node.store import ReadStatus

if TYPE_CHECKING:
    from brokers.node.delivery import DeliveryEngine
    from brokers.node.store import MessageStore

_TOPIC_COUNTERS = {"mq_messages_in": "messages_in", "mq_bytes_in": "bytes_in",
                   "mq_messages_out": "messages_out", "mq_bytes_out": "bytes_out"}
_THROTTLE_KINDS = {"throttled": "throttled_send", "receive": "throttled_receive"}


def _count(value: float) -> int:
    return max(0, int(value))


def new_namespace_body() -> dict[str, Any]:
    return {"storage_bytes": 0, "throttled_send": 0, "throttled_receive": 0, "topics": {},
            "groups": {}}


def add_counters(metrics: NodeMetrics, ns_body: Callable[[str], dict[str, Any]]) -> None:
    """Put the registry's counters into the namespace bodies ``ns_body(namespace)`` returns."""
    for family in metrics.registry.collect():
        if family.name in _TOPIC_COUNTERS:
            metric = _TOPIC_COUNTERS[family.name]
            for s in family.samples:
                ns, topic = s.labels.get("namespace"), s.labels.get("topic")
                if s.name.endswith("_total") and ns and topic:
                    ns_body(ns)["topics"].setdefault(topic, {})[metric] = _count(s.value)
        elif family.name == "mq_throttled_requests":
            for s in family.samples:
                kind = _THROTTLE_KINDS.get(s.labels.get("quota", ""))
                if s.name.endswith("_total") and kind and s.labels.get("namespace"):
                    ns_body(s.labels["namespace"])[kind] += _count(s.value)


def counters_report(metrics: NodeMetrics, boot_id: str, now: float) -> dict[str, Any]:
    """A report holding the counters only (for an agent without store and engine at hand)."""
    namespaces: dict[str, dict[str, Any]] = {}
    add_counters(metrics, lambda ns: namespaces.setdefault(ns, new_namespace_body()))
    return {"boot_id": boot_id, "ts": now, "namespaces": namespaces}


class MetricsReporter:
    """``await report()`` -> one ``{"type": "metrics", ...}`` message body (without ``type``)."""

    def __init__(
        self,
        *,
        metrics: NodeMetrics,
        store: MessageStore,
        delivery: DeliveryEngine,
        state: Callable[[], DesiredState],
        data_dir: Path,
        connections: Callable[[], int] = lambda: 0,
        clock: Callable[[], float] = time.time,
        boot_id: str | None = None,
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.delivery = delivery
        self.state = state
        self.data_dir = data_dir
        self.connections = connections
        self.clock = clock
        self.boot_id = boot_id or uuid.uuid4().hex

    async def report(self) -> dict[str, Any]:
        now = self.clock()
        namespaces: dict[str, dict[str, Any]] = {}

        def ns_body(ns: str) -> dict[str, Any]:
            body = namespaces.get(ns)
            if body is None:
                body = namespaces[ns] = new_namespace_body()
            return body

        state = self.state()
        for ns in state.namespaces:
            ns_body(ns)
        add_counters(self.metrics, ns_body)
        for ns, used in self.store.usage.by_namespace().items():
            if ns in namespaces or ns in state.namespaces:
                ns_body(ns)["storage_bytes"] = used
        for ns, spec in state.namespaces.items():
            groups = ns_body(ns)["groups"]
            for gspec in spec.groups.values():
                group = ConsumerGroup(namespace=ns, name=gspec.name,
                                      broadcast=gspec.delivery is DeliveryMode.BROADCAST)
                groups[gspec.name] = await self._group(group, list(spec.topics), now)
        return {"boot_id": self.boot_id, "ts": now, "node": self._node(), "namespaces": namespaces}

    async def _group(self, group: ConsumerGroup, topics: list[str], now: float) -> dict[str, Any]:
        lo, hi = self.store.queue_bounds(dlq_topic(group.namespace, group.name), 0)
        out: dict[str, Any] = {"dlq_messages": hi - lo, "topics": {}}
        if group.broadcast:  # offsets are per client there; no single group lag to report
            return out
        for topic in topics:
            stored = f"{group.namespace}%{topic}"
            queues = self.store.queues(stored)
            if not any(self.delivery.committed_offset(group, stored, q) is not None for q in queues):
                continue  # the group never consumed this topic here
            lag = 0
            oldest_ms: int | None = None
            for q in self.delivery.group_lag(group, stored):
                qlo, qhi = self.store.queue_bounds(stored, q.queue_id)
                start = max(q.committed_offset, qlo)
                if start >= qhi:
                    continue
                lag += qhi - start
                ts = await self._store_time(stored, q.queue_id, start)
                if ts is not None and (oldest_ms is None or ts < oldest_ms):
                    oldest_ms = ts
            age = max(0, int(now - oldest_ms / 1000)) if oldest_ms is not None else 0
            out["topics"][topic] = {"lag_messages": lag, "oldest_age_seconds": age}
        return out

    async def _store_time(self, topic: str, queue_id: int, offset: int) -> int | None:
        """Store time (ms) of the first readable message at or after ``offset``."""
        for _ in range(3):  # a retention run may move the minimum between reads
            res = await self.store.read(topic, queue_id, offset, max_count=1, max_bytes=1)
            if res.messages:
                return res.messages[0].store_timestamp_ms
            if res.status not in (ReadStatus.OFFSET_TOO_SMALL, ReadStatus.CORRUPTED) \
                    or res.next_offset <= offset:
                return None
            offset = res.next_offset
        return None

    def _node(self) -> dict[str, Any]:
        store = self.store
        body: dict[str, Any] = {
            "connections": self.connections(),
            "store": {
                "commitlog_min_offset": store.commitlog.min_offset,
                "commitlog_max_offset": store.end_offset,
                "flushed_offset": getattr(store.writer, "synced_pos", store.end_offset),
            },
        }
        try:
            disk = shutil.disk_usage(self.data_dir)
        except OSError:
            return body
        body["disk_used_bytes"], body["disk_free_bytes"] = disk.used, disk.free
        return body
