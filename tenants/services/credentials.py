"""Credentials (AccessKey + encrypted SecretKeys) and their ACL rules.

SecretKeys come from ``secrets`` (CSPRNG), are returned to the caller exactly once and stored
only as Fernet ciphertext. At most :data:`MAX_ACTIVE_SECRETS` are active per credential so a
rotation can overlap old and new until the old one is revoked.
"""
from __future__ import annotations

import string
import secrets
from typing import Any, Final

from django.db import transaction
from django.utils import timezone

from tenants import crypto
from tenants.errors import Conflict, ErrorCode, InvalidInput, QuotaExceeded
from tenants.models import AclAction, AclResourceType, AclRule, Credential, CredentialSecret, Instance
from tenants.services.audit import Actor, audit_record, notify_instance_changed, snapshot
from tenants.services.instances import ensure_instance_mutable
from tenants.validators import validate_acl_pattern, validate_cidr

ACCESS_KEY_LENGTH: Final = 20
SECRET_KEY_LENGTH: Final = 40
MAX_ACTIVE_SECRETS: Final = 2
_ACCESS_ALPHABET: Final = string.ascii_uppercase + string.digits
_SECRET_ALPHABET: Final = string.ascii_letters + string.digits


def _new_access_key() -> str:
    while True:
        key = "".join(secrets.choice(_ACCESS_ALPHABET) for _ in range(ACCESS_KEY_LENGTH))
        if not Credential.objects.filter(access_key=key).exists():
            return key


def _new_secret(credential: Credential) -> tuple[CredentialSecret, str]:
    plaintext = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_KEY_LENGTH))
    secret = CredentialSecret.objects.create(credential=credential, ciphertext=crypto.encrypt(plaintext))
    return secret, plaintext


def _active_secrets(credential: Credential) -> Any:
    return credential.secrets.filter(revoked_at__isnull=True)


def _ensure_not_revoked(credential: Credential) -> None:
    if credential.revoked_at is not None:
        raise Conflict("The credential is revoked.", code=ErrorCode.CREDENTIAL_REVOKED)


_ALL_GROUPS_SUB: Final = {"resource_type": AclResourceType.GROUP, "pattern": "*", "actions": [AclAction.SUB]}
#: The ACL rules a new credential can start with (``access``); "none" is deny-all until rules are
#: added. Like the access presets of cloud consoles: a quick start, narrowed later rule by rule.
ACCESS_PRESETS: Final[dict[str, tuple[dict[str, Any], ...]]] = {
    "none": (),
    "publish": ({"resource_type": AclResourceType.TOPIC, "pattern": "*", "actions": [AclAction.PUB]},),
    "subscribe": ({"resource_type": AclResourceType.TOPIC, "pattern": "*", "actions": [AclAction.SUB]},
                  _ALL_GROUPS_SUB),
    "publish_subscribe": ({"resource_type": AclResourceType.TOPIC, "pattern": "*",
                           "actions": [AclAction.PUB, AclAction.SUB]}, _ALL_GROUPS_SUB),
}


@transaction.atomic
def credential_create(*, instance: Instance, actor: Actor, description: str = "", enabled: bool = True,
                      access: str = "none") -> tuple[Credential, str]:
    """Create a credential with one SecretKey and the ACL rules of the ``access`` preset
    (``ACCESS_PRESETS``). Returns ``(credential, secret_plaintext)``."""
    if access not in ACCESS_PRESETS:
        raise InvalidInput("access", f"unknown access preset {access!r}; one of {', '.join(ACCESS_PRESETS)}.",
                           reason_code="invalid_choice")
    instance = Instance.objects.select_related("organisation__plan").select_for_update().get(pk=instance.pk)
    ensure_instance_mutable(instance)
    limit = instance.organisation.plan.credentials_per_instance
    count = instance.credentials.filter(revoked_at__isnull=True).count()
    if count >= limit:
        raise QuotaExceeded(quota="credentials_per_instance", limit=limit, current=count)
    credential = Credential.objects.create(
        instance=instance, access_key=_new_access_key(), description=description, enabled=enabled
    )
    secret, plaintext = _new_secret(credential)
    audit_record(actor=actor, organisation=instance.organisation, obj=credential, action="create", after=snapshot(credential))
    audit_record(actor=actor, organisation=instance.organisation, obj=secret, action="create", after=snapshot(secret))
    for rule in ACCESS_PRESETS[access]:
        acl_rule_create(credential=credential, actor=actor, description=f"access preset “{access}”", **rule)
    notify_instance_changed(instance.pk)
    return credential, plaintext


@transaction.atomic
def credential_update(*, credential: Credential, actor: Actor, description: str | None = None,
                      enabled: bool | None = None) -> Credential:
    ensure_instance_mutable(credential.instance)
    before = snapshot(credential)
    if description is not None:
        credential.description = description
    if enabled is not None:
        if enabled:
            _ensure_not_revoked(credential)
        credential.enabled = enabled
    credential.save(update_fields=["description", "enabled", "updated_at"])
    after = snapshot(credential)
    if after != before:
        audit_record(actor=actor, organisation=credential.instance.organisation, obj=credential, action="update",
                     before=before, after=after)
        notify_instance_changed(credential.instance_id)
    return credential


@transaction.atomic
def credential_rotate(*, credential: Credential, actor: Actor) -> tuple[CredentialSecret, str]:
    """Add a new active SecretKey next to the current one (both work until one is revoked)."""
    credential = Credential.objects.select_related("instance__organisation").select_for_update().get(pk=credential.pk)
    ensure_instance_mutable(credential.instance)
    _ensure_not_revoked(credential)
    active = _active_secrets(credential).count()
    if active >= MAX_ACTIVE_SECRETS:
        raise Conflict(
            f"A credential has at most {MAX_ACTIVE_SECRETS} active secrets; revoke the old one first.",
            code=ErrorCode.SECRET_LIMIT, details={"limit": MAX_ACTIVE_SECRETS, "current": active},
        )
    secret, plaintext = _new_secret(credential)
    audit_record(actor=actor, organisation=credential.instance.organisation, obj=secret, action="rotate", after=snapshot(secret))
    notify_instance_changed(credential.instance_id)
    return secret, plaintext


@transaction.atomic
def credential_secret_revoke(*, credential: Credential, secret_id: int, actor: Actor) -> CredentialSecret:
    """Revoke one SecretKey. The last active one cannot be revoked this way (revoke the credential)."""
    credential = Credential.objects.select_related("instance__organisation").select_for_update().get(pk=credential.pk)
    ensure_instance_mutable(credential.instance)
    secret = _active_secrets(credential).filter(pk=secret_id).first()
    if secret is None:
        raise InvalidInput("secret_id", "no active secret with this id on this credential.", reason_code="not_found")
    if _active_secrets(credential).count() == 1:
        raise Conflict("This is the credential's last active secret; revoke the credential instead.",
                       code=ErrorCode.LAST_SECRET)
    before = snapshot(secret)
    secret.revoked_at = timezone.now()
    secret.save(update_fields=["revoked_at"])
    audit_record(actor=actor, organisation=credential.instance.organisation, obj=secret, action="revoke",
                 before=before, after=snapshot(secret))
    notify_instance_changed(credential.instance_id)
    return secret


@transaction.atomic
def credential_revoke(*, credential: Credential, actor: Actor) -> Credential:
    """Revoke the credential and all its secrets for good (kept for the record, disabled)."""
    ensure_instance_mutable(credential.instance)
    if credential.revoked_at is not None:
        return credential
    before = snapshot(credential)
    now = timezone.now()
    _active_secrets(credential).update(revoked_at=now)
    credential.revoked_at = now
    credential.enabled = False
    credential.save(update_fields=["revoked_at", "enabled", "updated_at"])
    audit_record(actor=actor, organisation=credential.instance.organisation, obj=credential, action="revoke",
                 before=before, after=snapshot(credential))
    notify_instance_changed(credential.instance_id)
    return credential


@transaction.atomic
def credential_delete(*, credential: Credential, actor: Actor) -> None:
    ensure_instance_mutable(credential.instance)
    audit_record(actor=actor, organisation=credential.instance.organisation, obj=credential, action="delete",
                 before=snapshot(credential))
    instance_id = credential.instance_id
    credential.delete()
    notify_instance_changed(instance_id)


# --- ACL rules ----------------------------------------------------------------------------------


def _clean_rule(values: dict[str, Any]) -> dict[str, Any]:
    """Business validation of an ACL rule (field-named errors)."""
    from django.core.exceptions import ValidationError

    resource_type = values["resource_type"]
    actions = list(dict.fromkeys(values.get("actions") or []))
    if not actions:
        raise InvalidInput("actions", "at least one action is required.", reason_code="required")
    for action in actions:
        if action not in AclAction.values:
            raise InvalidInput("actions", f"unknown action {action!r}.", reason_code="invalid_choice")
    if resource_type == AclResourceType.GROUP and actions != [AclAction.SUB]:
        raise InvalidInput("actions", "consumer-group rules only take the 'sub' action.", reason_code="invalid_choice")
    try:
        validate_acl_pattern(values["pattern"])
    except ValidationError as exc:
        raise InvalidInput("pattern", exc.messages[0], reason_code="invalid_pattern") from exc
    cidrs = list(dict.fromkeys(values.get("source_cidrs") or []))
    for cidr in cidrs:
        try:
            validate_cidr(cidr)
        except ValidationError as exc:
            raise InvalidInput("source_cidrs", exc.messages[0], reason_code="invalid_cidr") from exc
    return {**values, "actions": actions, "source_cidrs": cidrs}


ACL_FIELDS = ("resource_type", "pattern", "actions", "effect", "source_cidrs", "description")


@transaction.atomic
def acl_rule_create(*, credential: Credential, actor: Actor, **fields: Any) -> AclRule:
    ensure_instance_mutable(credential.instance)
    _ensure_not_revoked(credential)
    values = _clean_rule({k: v for k, v in fields.items() if k in ACL_FIELDS})
    rule = AclRule.objects.create(credential=credential, **values)
    audit_record(actor=actor, organisation=credential.instance.organisation, obj=rule, action="create", after=snapshot(rule))
    notify_instance_changed(credential.instance_id)
    return rule


@transaction.atomic
def acl_rule_update(*, rule: AclRule, actor: Actor, **fields: Any) -> AclRule:
    ensure_instance_mutable(rule.credential.instance)
    before = snapshot(rule)
    current = {k: getattr(rule, k) for k in ACL_FIELDS}
    current.update({k: v for k, v in fields.items() if k in ACL_FIELDS and v is not None})
    for key, value in _clean_rule(current).items():
        setattr(rule, key, value)
    rule.save(update_fields=[*ACL_FIELDS, "updated_at"])
    after = snapshot(rule)
    if after != before:
        audit_record(actor=actor, organisation=rule.credential.instance.organisation, obj=rule, action="update",
                     before=before, after=after)
        notify_instance_changed(rule.credential.instance_id)
    return rule


@transaction.atomic
def acl_rule_delete(*, rule: AclRule, actor: Actor) -> None:
    ensure_instance_mutable(rule.credential.instance)
    audit_record(actor=actor, organisation=rule.credential.instance.organisation, obj=rule, action="delete",
                 before=snapshot(rule))
    instance_id = rule.credential.instance_id
    rule.delete()
    notify_instance_changed(instance_id)
