"""Management queries the control plane sends over the agent's websocket (docs/fleet.md,
"Admin channel"). Django-free; one namespace per request, never crossing namespaces."""

from __future__ import annotations

from brokers.node.admin.service import OPS, AdminError, AdminService

__all__ = ["OPS", "AdminError", "AdminService"]
