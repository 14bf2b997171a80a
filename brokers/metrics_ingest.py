"""Entry point the node-agent consumer calls for every metrics report: ``ingest(node, payload)``.

A thin adapter over :func:`brokers.services.metrics.metrics_ingest` (payload format in
docs/metrics-and-alerting.md). Synchronous ORM code: call it through ``database_sync_to_async``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any


def ingest(node: Any, payload: dict[str, Any], *, now: datetime | None = None) -> int:
    """Store one report of ``node`` (a BrokerNode, or its name); returns the samples kept."""
    from brokers.services.metrics import metrics_ingest

    return metrics_ingest(node=node, payload=payload, now=now)
