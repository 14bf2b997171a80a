"""Build a node's desired state from the tenants models, in exactly the JSON format the node
parses (``brokers.node.config.state.parse_desired_state``; format in docs/desired-state.md).

A node serves every ``provisioning`` or ``ready`` instance placed on its cluster: its namespace,
topics, groups, enabled and disabled credentials with their active (decrypted) SecretKeys and ACL
rules, and the instance quotas. Revoked credentials and secrets are left out, so they stop
working on the node as soon as it applies the new version.
"""
from __future__ import annotations

import ipaddress
from typing import Any

from django.db.models import Prefetch

from brokers.models import BrokerNode
from tenants import crypto
from tenants.models import AclRule, Credential, CredentialSecret, Instance, InstanceStatus

SERVED_STATUSES = (InstanceStatus.PROVISIONING, InstanceStatus.READY)
_MAX_SECRETS = 2  # the node accepts one or two (rollover)


def served_instances(node: BrokerNode) -> Any:
    return Instance.objects.filter(placement__cluster_id=node.cluster_id, status__in=SERVED_STATUSES).order_by("pk")


def _group(g: Any) -> dict[str, Any]:
    return {
        "delivery": g.delivery,
        "fifo": g.fifo,
        "max_delivery_attempts": g.max_delivery_attempts,
        "retry_backoff": {
            "kind": "exponential",
            "initial_s": g.retry_initial_backoff_ms / 1000,
            "max_s": g.retry_max_backoff_ms / 1000,
            "multiplier": g.retry_backoff_multiplier,
        },
    }


def _credential(c: Credential) -> dict[str, Any] | None:
    secrets = [crypto.decrypt(s.ciphertext) for s in c.active_secrets][-_MAX_SECRETS:]
    if not secrets:
        return None
    return {
        "secrets": secrets,
        "enabled": c.enabled,
        "acl": [
            {"resource": r.resource_type, "pattern": r.pattern, "actions": list(r.actions), "effect": r.effect,
             "cidrs": list(r.source_cidrs or [])}
            for r in c.acl_rules.all()
        ],
    }


def namespace_state(instance: Instance) -> dict[str, Any]:
    credentials = {}
    for c in instance.credentials.all():
        doc = _credential(c)
        if doc is not None:
            credentials[c.access_key] = doc
    return {
        "topics": {
            t.name: {"type": t.message_type, "queues": t.queue_count, "retention_hours": t.retention_hours}
            for t in instance.topics.all()
        },
        "groups": {g.name: _group(g) for g in instance.groups.all()},
        "credentials": credentials,
        "quotas": {
            "send_tps": instance.send_tps,
            "receive_tps": instance.receive_tps,
            "max_message_bytes": min(instance.max_message_bytes, 64 * 1024 * 1024),
            "storage_bytes": instance.storage_bytes,
        },
    }


def _node_section(node: BrokerNode) -> dict[str, Any]:
    section: dict[str, Any] = {"name": node.name, "role": node.role}
    host, _, port = node.advertised_endpoint.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
        section["advertised_host"] = host
        section["advertised_port"] = int(port)
    except ValueError:
        pass  # no (IPv4) advertised address: routes echo the address the client dialled
    return section


def build_node_state(node: BrokerNode, *, version: int) -> dict[str, Any]:
    """The full desired-state document of ``node`` at ``version``."""
    instances = served_instances(node).prefetch_related(
        "topics",
        "groups",
        Prefetch(
            "credentials",
            queryset=Credential.objects.filter(revoked_at__isnull=True).order_by("pk").prefetch_related(
                Prefetch("secrets", queryset=CredentialSecret.objects.filter(revoked_at__isnull=True).order_by("pk"),
                         to_attr="active_secrets"),
                Prefetch("acl_rules", queryset=AclRule.objects.order_by("pk")),
            ),
        ),
    )
    return {
        "version": version,
        "node": _node_section(node),
        "namespaces": {i.namespace: namespace_state(i) for i in instances},
    }
