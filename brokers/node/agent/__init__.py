"""The node agent: the broker's one websocket to the control plane (Django-free)."""

from __future__ import annotations

from .agent import AgentConfig, NodeAgent, metrics_payload, persist_and_apply

__all__ = ["AgentConfig", "NodeAgent", "metrics_payload", "persist_and_apply"]
