"""Node health and Prometheus metrics over a small HTTP port."""

from __future__ import annotations

from .http import MetricsServer
from .registry import NodeMetrics

__all__ = ["MetricsServer", "NodeMetrics"]
