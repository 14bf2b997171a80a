"""Audit trail and fleet notifications shared by every service.

Each mutating service calls :func:`audit_record` inside its own ``@transaction.atomic`` block, so
the entry commits or rolls back with the change. Snapshots use explicit field lists
(:data:`AUDIT_FIELDS`); secret material is never listed, so it cannot reach the log.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models, transaction

from tenants.models import (
    AclRule,
    ApiToken,
    AuditLog,
    ConsumerGroup,
    Credential,
    CredentialSecret,
    Instance,
    Invitation,
    Membership,
    Organisation,
    Topic,
)
from tenants.signals import instance_created, instance_state_changed


@dataclass(frozen=True, slots=True)
class Actor:
    """Who performs a change and from where (the request's address)."""

    user: AbstractBaseUser | None = None
    source_ip: str | None = None

    @property
    def user_or_none(self) -> AbstractBaseUser | None:
        if self.user is None or isinstance(self.user, AnonymousUser) or not self.user.is_authenticated:
            return None
        return self.user


SYSTEM = Actor()

# Field lists per audited model. Never add ciphertext, hashes or keys here.
AUDIT_FIELDS: dict[type[models.Model], tuple[str, ...]] = {
    Organisation: ("name", "slug", "plan_id"),
    Membership: ("organisation_id", "user_id", "role"),
    Invitation: ("organisation_id", "email", "role", "expires_at", "accepted_at", "revoked_at"),
    ApiToken: ("user_id", "name", "prefix", "revoked_at"),
    Instance: (
        "name", "description", "namespace", "status", "endpoint", "send_tps", "receive_tps",
        "storage_bytes", "retention_hours", "max_message_bytes",
    ),
    Topic: ("instance_id", "name", "message_type", "queue_count", "retention_hours", "description"),
    ConsumerGroup: (
        "instance_id", "name", "delivery", "fifo", "max_delivery_attempts", "retry_initial_backoff_ms",
        "retry_max_backoff_ms", "retry_backoff_multiplier", "description",
    ),
    Credential: ("instance_id", "access_key", "description", "enabled", "revoked_at"),
    CredentialSecret: ("credential_id", "created_at", "revoked_at"),
    AclRule: ("credential_id", "resource_type", "pattern", "actions", "effect", "source_cidrs", "description"),
}

OBJECT_TYPES: dict[type[models.Model], str] = {
    Organisation: "organisation",
    Membership: "membership",
    Invitation: "invitation",
    ApiToken: "api_token",
    Instance: "instance",
    Topic: "topic",
    ConsumerGroup: "consumer_group",
    Credential: "credential",
    CredentialSecret: "credential_secret",
    AclRule: "acl_rule",
}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return value


def snapshot(obj: models.Model) -> dict[str, Any]:
    """The audited fields of ``obj`` as a JSON-ready dict."""
    return {name: _jsonable(getattr(obj, name)) for name in AUDIT_FIELDS[type(obj)]}


def audit_record(
    *,
    actor: Actor,
    organisation: Organisation | None,
    obj: models.Model,
    action: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    """Write one audit entry (call inside the transaction of the change)."""
    user = actor.user_or_none
    return AuditLog.objects.create(
        organisation=organisation,
        actor=user,
        actor_repr=getattr(user, "email", "") or ("system" if user is None else str(user)),
        object_type=OBJECT_TYPES[type(obj)],
        object_id=str(obj.pk),
        object_repr=str(obj)[:255],
        action=action,
        before=before,
        after=after,
        source_ip=actor.source_ip,
    )


def notify_instance_changed(instance_id: int) -> None:
    """Tell the fleet after commit that an instance's desired state changed."""
    transaction.on_commit(lambda: instance_state_changed.send(sender=Instance, instance_id=instance_id))


def notify_instance_created(instance_id: int) -> None:
    """Tell the fleet after commit that an instance needs provisioning."""
    transaction.on_commit(lambda: instance_created.send(sender=Instance, instance_id=instance_id))
