"""Write operations (services). Every function is transactional, takes keyword-only arguments,
records an audit entry for each change and, when an instance's desired state changes, notifies
the broker fleet after commit (see :mod:`tenants.signals`)."""
from __future__ import annotations

from tenants.services.accounts import (
    api_token_authenticate,
    api_token_create,
    api_token_revoke,
    invitation_accept,
    invitation_create,
    invitation_get_pending,
    invitation_revoke,
    membership_delete,
    membership_update,
    organisation_create,
    organisation_delete,
    organisation_update,
    password_reset_confirm,
    password_reset_request,
    user_authenticate,
    user_confirm_email,
    user_signup,
)
from tenants.services.audit import SYSTEM, Actor, audit_record
from tenants.services.credentials import (
    acl_rule_create,
    acl_rule_delete,
    acl_rule_update,
    credential_create,
    credential_delete,
    credential_revoke,
    credential_rotate,
    credential_secret_revoke,
    credential_update,
)
from tenants.services.instances import instance_create, instance_delete, instance_set_status, instance_update
from tenants.services.plans import organisation_plan_assign, plan_get_default, plans_ensure_defaults
from tenants.services.resources import group_create, group_delete, group_update, topic_create, topic_delete, topic_update

__all__ = [
    "SYSTEM", "Actor", "audit_record",
    "acl_rule_create", "acl_rule_delete", "acl_rule_update",
    "api_token_authenticate", "api_token_create", "api_token_revoke",
    "credential_create", "credential_delete", "credential_revoke", "credential_rotate",
    "credential_secret_revoke", "credential_update",
    "group_create", "group_delete", "group_update",
    "instance_create", "instance_delete", "instance_set_status", "instance_update",
    "invitation_accept", "invitation_create", "invitation_get_pending", "invitation_revoke",
    "membership_delete", "membership_update",
    "organisation_create", "organisation_delete", "organisation_plan_assign", "organisation_update",
    "password_reset_confirm", "password_reset_request",
    "plan_get_default", "plans_ensure_defaults",
    "topic_create", "topic_delete", "topic_update",
    "user_authenticate", "user_confirm_email", "user_signup",
]
