"""Request/response shapes of the REST API. Field-level checks only; business rules (quotas,
uniqueness, role grants) live in the services, which the views call."""
from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Model, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from tenants.models import (
    AclAction,
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
    Plan,
    Role,
    Topic,
)
from tenants.validators import validate_cidr
from tenants.services.credentials import ACCESS_PRESETS

User = get_user_model()


@extend_schema_field(OpenApiTypes.INT)
class TenantRelatedField(serializers.PrimaryKeyRelatedField):
    """A primary key that must belong to the caller's organisation; others read as missing."""

    def __init__(self, model: type[Model], **kwargs: Any):
        self.model = model
        super().__init__(**kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        view = self.context.get("scoping_view")
        if view is None:
            return self.model.objects.none()
        lookup = self.model.ORGANISATION_LOOKUP  # type: ignore[attr-defined]
        return self.model.objects.filter(**{lookup: view.get_organisation()})


# --- auth ---------------------------------------------------------------------------------------


class SignupSerializer(serializers.Serializer):
    organisation_name = serializers.CharField(max_length=120)
    email = serializers.EmailField(max_length=150)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})


class ConfirmEmailSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=512)


class LoginSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=150)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})


class PasswordResetRequestSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=150)


class PasswordResetConfirmSerializer(serializers.Serializer):
    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)
    password = serializers.CharField(write_only=True, max_length=128)


class InvitationAcceptSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=128)
    password = serializers.CharField(write_only=True, max_length=128)


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class MembershipBriefSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="organisation.id")
    name = serializers.CharField(source="organisation.name")
    slug = serializers.CharField(source="organisation.slug")
    plan = serializers.CharField(source="organisation.plan.code")

    class Meta:
        model = Membership
        fields = ["id", "name", "slug", "plan", "role"]


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    is_staff = serializers.BooleanField()
    organisations = MembershipBriefSerializer(many=True, source="memberships.all")


class SignupResponseSerializer(serializers.Serializer):
    detail = serializers.CharField()
    email = serializers.EmailField()
    organisation = serializers.CharField(help_text="Slug of the new organisation.")


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown exactly once.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


# --- organisations, members, invitations, plans -------------------------------------------------


class PlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        exclude = ["created_at"]


class PlanAssignSerializer(serializers.Serializer):
    organisation = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="Organisation id.")


class OrganisationPlanSerializer(serializers.Serializer):
    plan = serializers.SlugRelatedField(slug_field="code", queryset=Plan.objects.all())


class OrganisationSerializer(serializers.ModelSerializer):
    plan = serializers.SlugRelatedField(slug_field="code", read_only=True)
    role = serializers.SerializerMethodField(help_text="Your role in this organisation.")

    class Meta:
        model = Organisation
        fields = ["id", "name", "slug", "plan", "role", "created_at"]
        read_only_fields = ["slug", "created_at"]

    def get_role(self, obj: Organisation) -> str | None:
        roles = self.context.get("roles") or {}
        return roles.get(obj.pk)


class MembershipSerializer(serializers.ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)
    user = serializers.IntegerField(source="user_id", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "email", "role", "created_at"]
        read_only_fields = ["created_at"]


class MembershipUpdateSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationSerializer(serializers.ModelSerializer):
    invited_by = serializers.EmailField(source="invited_by.email", read_only=True, default=None)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "invited_by", "created_at", "expires_at", "accepted_at", "revoked_at"]
        read_only_fields = ["created_at", "expires_at", "accepted_at", "revoked_at"]


# --- instances and resources --------------------------------------------------------------------

_QUOTA_KW: dict[str, Any] = {"required": False, "min_value": 1}


class InstanceSerializer(serializers.ModelSerializer):
    send_tps = serializers.IntegerField(**_QUOTA_KW, max_value=10**9, help_text="Default: the plan's.")
    receive_tps = serializers.IntegerField(**_QUOTA_KW, max_value=10**9, help_text="Default: the plan's.")
    storage_bytes = serializers.IntegerField(**_QUOTA_KW, max_value=2**62, help_text="Default: the plan's.")
    retention_hours = serializers.IntegerField(**_QUOTA_KW, max_value=10**6, help_text="Default: the plan's.")
    max_message_bytes = serializers.IntegerField(**_QUOTA_KW, max_value=2**31 - 1, help_text="Default: the plan's.")

    class Meta:
        model = Instance
        fields = [
            "id", "name", "description", "namespace", "status", "status_message", "endpoint",
            "send_tps", "receive_tps", "storage_bytes", "retention_hours", "max_message_bytes",
            "created_at", "updated_at",
        ]
        read_only_fields = ["namespace", "status", "status_message", "endpoint", "created_at", "updated_at"]
        validators: list[Any] = []


class InstanceUpdateSerializer(InstanceSerializer):
    class Meta(InstanceSerializer.Meta):
        fields = ["description", "send_tps", "receive_tps", "storage_bytes", "retention_hours", "max_message_bytes"]
        read_only_fields: list[str] = []


class TopicSerializer(serializers.ModelSerializer):
    instance = TenantRelatedField(Instance)
    retention_hours = serializers.IntegerField(required=False, min_value=1, max_value=10**6,
                                               help_text="Default and maximum: the instance's retention.")

    class Meta:
        model = Topic
        fields = ["id", "instance", "name", "message_type", "queue_count", "retention_hours", "description",
                  "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        validators: list[Any] = []


class TopicUpdateSerializer(serializers.ModelSerializer):
    retention_hours = serializers.IntegerField(required=False, min_value=1, max_value=10**6)

    class Meta:
        model = Topic
        fields = ["queue_count", "retention_hours", "description"]


class ConsumerGroupSerializer(serializers.ModelSerializer):
    instance = TenantRelatedField(Instance)

    class Meta:
        model = ConsumerGroup
        fields = ["id", "instance", "name", "delivery", "fifo", "max_delivery_attempts", "retry_initial_backoff_ms",
                  "retry_max_backoff_ms", "retry_backoff_multiplier", "description", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        validators: list[Any] = []


class ConsumerGroupUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = ConsumerGroup
        fields = ["delivery", "fifo", "max_delivery_attempts", "retry_initial_backoff_ms", "retry_max_backoff_ms",
                  "retry_backoff_multiplier", "description"]


class CredentialSecretSerializer(serializers.ModelSerializer):
    """Metadata of a SecretKey; the value itself is never readable after creation."""

    class Meta:
        model = CredentialSecret
        fields = ["id", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class CredentialSerializer(serializers.ModelSerializer):
    instance = TenantRelatedField(Instance)
    secrets = CredentialSecretSerializer(many=True, read_only=True)

    class Meta:
        model = Credential
        fields = ["id", "instance", "access_key", "description", "enabled", "last_used_at", "revoked_at", "secrets",
                  "created_at", "updated_at"]
        read_only_fields = ["access_key", "last_used_at", "revoked_at", "created_at", "updated_at"]


class CredentialCreateSerializer(CredentialSerializer):
    access = serializers.ChoiceField(
        choices=list(ACCESS_PRESETS), default="none", write_only=True,
        help_text="ACL rules to start with: none (deny all until rules are added), publish (all topics), "
                  "subscribe (all topics and groups) or publish_subscribe.")

    class Meta(CredentialSerializer.Meta):
        fields = [*CredentialSerializer.Meta.fields, "access"]


class CredentialCreatedSerializer(CredentialSerializer):
    secret_key = serializers.CharField(read_only=True, help_text="Shown exactly once; store it now.")

    class Meta(CredentialSerializer.Meta):
        fields = [*CredentialSerializer.Meta.fields, "secret_key"]


class CredentialUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Credential
        fields = ["description", "enabled"]


class CredentialRotatedSerializer(serializers.Serializer):
    access_key = serializers.CharField()
    secret = CredentialSecretSerializer()
    secret_key = serializers.CharField(help_text="The new SecretKey, shown exactly once.")


class SecretRevokeSerializer(serializers.Serializer):
    secret_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class AclRuleSerializer(serializers.ModelSerializer):
    credential = TenantRelatedField(Credential)
    instance = serializers.IntegerField(source="credential.instance_id", read_only=True)
    actions = serializers.ListField(child=serializers.ChoiceField(choices=AclAction.choices), min_length=1, max_length=2)
    source_cidrs = serializers.ListField(
        child=serializers.CharField(max_length=64, validators=[validate_cidr]), required=False, max_length=64,
        help_text="Client networks the rule applies to; empty = any address.",
    )

    class Meta:
        model = AclRule
        fields = ["id", "credential", "instance", "resource_type", "pattern", "actions", "effect", "source_cidrs",
                  "description", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


class AclRuleUpdateSerializer(AclRuleSerializer):
    class Meta(AclRuleSerializer.Meta):
        fields = ["resource_type", "pattern", "actions", "effect", "source_cidrs", "description"]


class AclEvaluateSerializer(serializers.Serializer):
    credential = TenantRelatedField(Credential)
    resource_type = serializers.ChoiceField(choices=AclRule._meta.get_field("resource_type").choices)
    name = serializers.CharField(max_length=127)
    action = serializers.ChoiceField(choices=AclAction.choices)
    source_ip = serializers.IPAddressField(required=False, allow_null=True)


class AclDecisionSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    matched_rules = serializers.ListField(child=serializers.IntegerField())


class AuditLogSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditLog
        fields = ["id", "actor", "actor_repr", "object_type", "object_id", "object_repr", "action", "before", "after",
                  "source_ip", "created_at"]
        read_only_fields = fields
