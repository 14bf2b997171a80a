"""Prometheus metrics of one node, in a registry of its own (no process-global state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge


class NodeMetrics:
    """Counters per namespace/topic; gauges read lazily from callbacks at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._in: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._out: dict[tuple[str, str], tuple[Any, Any]] = {}
        r = self.registry
        self.messages_in = Counter(
            "mq_messages_in", "Messages accepted by SendMessage", ["namespace", "topic"], registry=r
        )
        self.bytes_in = Counter(
            "mq_bytes_in", "Body bytes accepted by SendMessage", ["namespace", "topic"], registry=r
        )
        self.messages_out = Counter(
            "mq_messages_out", "Messages delivered by ReceiveMessage", ["namespace", "topic"],
            registry=r,
        )
        self.bytes_out = Counter(
            "mq_bytes_out", "Body bytes delivered by ReceiveMessage", ["namespace", "topic"],
            registry=r,
        )
        self.throttled = Counter(
            "mq_throttled_requests", "Requests refused by a quota", ["namespace", "quota"],
            registry=r,
        )
        self.auth_failures = Counter(
            "mq_auth_failures", "Requests refused by authentication or ACL",
            ["namespace", "reason"], registry=r,
        )
        self.state_version = Gauge(
            "mq_desired_state_version", "Version of the applied desired state", registry=r
        )
        self.store_position = Gauge(
            "mq_store_commitlog_end_offset", "Commit-log end offset (bytes)", registry=r
        )

    def auth_failure(self, namespace: str, reason: str) -> None:
        self.auth_failures.labels(namespace, reason).inc()

    def sent(self, namespace: str, topic: str, count: int, nbytes: int) -> None:
        key = (namespace, topic)
        pair = self._in.get(key)
        if pair is None:  # labels() is a locked dict lookup; keep the children at hand
            pair = self._in[key] = (self.messages_in.labels(*key), self.bytes_in.labels(*key))
        pair[0].inc(count)
        pair[1].inc(nbytes)

    def delivered(self, namespace: str, topic: str, count: int, nbytes: int) -> None:
        key = (namespace, topic)
        pair = self._out.get(key)
        if pair is None:
            pair = self._out[key] = (self.messages_out.labels(*key), self.bytes_out.labels(*key))
        pair[0].inc(count)
        pair[1].inc(nbytes)

    def throttle(self, namespace: str, quota: str) -> None:
        self.throttled.labels(namespace, quota).inc()

    def track_store_position(self, read: Callable[[], float]) -> None:
        self.store_position.set_function(read)
