"""Hooks for the broker fleet. Services send these from ``transaction.on_commit`` only, so a
receiver never sees state that was rolled back.

``instance_state_changed(sender, instance_id)``: the desired state of an instance changed (the
instance itself, its quotas/plan, topics, groups, credentials/secrets or ACL rules). The fleet
pushes a new versioned state to the nodes serving it.

``instance_created(sender, instance_id)``: a new instance needs provisioning (placement, nodes).
"""
from __future__ import annotations

from django.dispatch import Signal

instance_state_changed = Signal()
instance_created = Signal()
