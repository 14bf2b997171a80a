"""Instances, topics, consumer groups, credentials and ACL rules of the selected organisation.

All of them derive from :class:`ServiceViewSet` (itself the tenant-scoping base): serializers
parse, one service call writes, the output serializer answers.
"""
from __future__ import annotations

from typing import Any, ClassVar

import django_filters
from django.db.models import Model
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from tenants import acl, services
from tenants.api import serializers as s
from tenants.api.permissions import RolePermission
from tenants.api.scoping import ORGANISATION_PARAMETERS, TenantScopedViewSet
from tenants.models import AclRule, ConsumerGroup, Credential, Instance, Role, Topic


def documented(output: type[serializers.Serializer], update: type[serializers.Serializer], *,
               destroy_status: int = 204) -> Any:
    """Schema annotations shared by every ServiceViewSet subclass."""
    destroy_response = {destroy_status: output if destroy_status == 202 else None}
    return extend_schema_view(
        list=extend_schema(parameters=ORGANISATION_PARAMETERS),
        retrieve=extend_schema(parameters=ORGANISATION_PARAMETERS),
        create=extend_schema(parameters=ORGANISATION_PARAMETERS, request=output, responses={201: output}),
        partial_update=extend_schema(parameters=ORGANISATION_PARAMETERS, request=update, responses={200: output}),
        destroy=extend_schema(parameters=ORGANISATION_PARAMETERS, responses=destroy_response),
    )


class ServiceViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """CRUD over services. Subclasses implement ``service_create/update/delete``."""

    permission_classes = [RolePermission]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    update_serializer_class: ClassVar[type[serializers.Serializer]]

    def get_serializer_class(self) -> type[serializers.Serializer]:
        if self.action == "partial_update":
            return self.update_serializer_class
        return self.serializer_class

    def _render(self, obj: Model, *, status_code: int = 200) -> Response:
        return Response(self.serializer_class(obj, context=self.get_serializer_context()).data, status=status_code)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        return self._render(self.service_create(dict(data.validated_data)), status_code=status.HTTP_201_CREATED)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        obj = self.get_object()
        data = self.get_serializer(obj, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return self._render(self.service_update(obj, dict(data.validated_data)))

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.service_delete(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    def service_create(self, data: dict[str, Any]) -> Model:
        raise NotImplementedError

    def service_update(self, obj: Any, data: dict[str, Any]) -> Model:
        raise NotImplementedError

    def service_delete(self, obj: Any) -> None:
        raise NotImplementedError


class InstanceFilter(django_filters.FilterSet):
    status = django_filters.CharFilter()
    name = django_filters.CharFilter()

    class Meta:
        model = Instance
        fields = ["status", "name"]


@documented(s.InstanceSerializer, s.InstanceUpdateSerializer, destroy_status=202)
class InstanceViewSet(ServiceViewSet):
    """Messaging instances. DELETE answers 202: the instance turns ``deleting`` and the broker
    fleet removes it later; its namespace is never reused."""

    queryset = Instance.objects.all()
    serializer_class = s.InstanceSerializer
    update_serializer_class = s.InstanceUpdateSerializer
    filterset_class = InstanceFilter

    def service_create(self, data: dict[str, Any]) -> Model:
        return services.instance_create(organisation=self.get_organisation(), actor=self.actor, **data)

    def service_update(self, obj: Instance, data: dict[str, Any]) -> Model:
        return services.instance_update(instance=obj, actor=self.actor, **data)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        instance = services.instance_delete(instance=self.get_object(), actor=self.actor)
        return self._render(instance, status_code=status.HTTP_202_ACCEPTED)


class _ByInstanceFilter(django_filters.FilterSet):
    # A plain number, not a model choice: an id of another tenant must look exactly like a
    # missing one (empty result), never like "invalid choice".
    instance = django_filters.NumberFilter(field_name="instance_id")
    name = django_filters.CharFilter()


class TopicFilter(_ByInstanceFilter):
    message_type = django_filters.CharFilter()

    class Meta:
        model = Topic
        fields = ["instance", "name", "message_type"]


@documented(s.TopicSerializer, s.TopicUpdateSerializer)
class TopicViewSet(ServiceViewSet):
    """Topics; filter with ``?instance=<id>``. The message type is fixed at creation."""

    queryset = Topic.objects.select_related("instance")
    serializer_class = s.TopicSerializer
    update_serializer_class = s.TopicUpdateSerializer
    filterset_class = TopicFilter

    def service_create(self, data: dict[str, Any]) -> Model:
        return services.topic_create(actor=self.actor, **data)

    def service_update(self, obj: Topic, data: dict[str, Any]) -> Model:
        return services.topic_update(topic=obj, actor=self.actor, **data)

    def service_delete(self, obj: Topic) -> None:
        services.topic_delete(topic=obj, actor=self.actor)


class GroupFilter(_ByInstanceFilter):
    class Meta:
        model = ConsumerGroup
        fields = ["instance", "name"]


@documented(s.ConsumerGroupSerializer, s.ConsumerGroupUpdateSerializer)
class ConsumerGroupViewSet(ServiceViewSet):
    """Consumer groups; filter with ``?instance=<id>``."""

    queryset = ConsumerGroup.objects.select_related("instance")
    serializer_class = s.ConsumerGroupSerializer
    update_serializer_class = s.ConsumerGroupUpdateSerializer
    filterset_class = GroupFilter

    def service_create(self, data: dict[str, Any]) -> Model:
        return services.group_create(actor=self.actor, **data)

    def service_update(self, obj: ConsumerGroup, data: dict[str, Any]) -> Model:
        return services.group_update(group=obj, actor=self.actor, **data)

    def service_delete(self, obj: ConsumerGroup) -> None:
        services.group_delete(group=obj, actor=self.actor)


class CredentialFilter(django_filters.FilterSet):
    instance = django_filters.NumberFilter(field_name="instance_id")
    access_key = django_filters.CharFilter()
    enabled = django_filters.BooleanFilter()

    class Meta:
        model = Credential
        fields = ["instance", "access_key", "enabled"]


@documented(s.CredentialSerializer, s.CredentialUpdateSerializer)
class CredentialViewSet(ServiceViewSet):
    """AccessKey/SecretKey pairs (admin or owner to change; everyone in the organisation may list
    them, and nobody can read a SecretKey after the response that created it)."""

    queryset = Credential.objects.select_related("instance").prefetch_related("secrets")
    serializer_class = s.CredentialSerializer
    update_serializer_class = s.CredentialUpdateSerializer
    filterset_class = CredentialFilter
    write_role = Role.ADMIN

    @extend_schema(parameters=ORGANISATION_PARAMETERS, request=s.CredentialCreateSerializer,
                   responses={201: s.CredentialCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Create a credential (with the ACL rules of ``access``); ``secret_key`` in this
        response is the only time it is shown."""
        data = s.CredentialCreateSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        credential, secret = services.credential_create(actor=self.actor, **data.validated_data)
        credential = self.get_queryset().get(pk=credential.pk)
        body = s.CredentialCreatedSerializer(credential, context=self.get_serializer_context()).data
        return Response(body | {"secret_key": secret}, status=status.HTTP_201_CREATED)

    def service_update(self, obj: Credential, data: dict[str, Any]) -> Model:
        services.credential_update(credential=obj, actor=self.actor, **data)
        return self.get_queryset().get(pk=obj.pk)

    def service_delete(self, obj: Credential) -> None:
        services.credential_delete(credential=obj, actor=self.actor)

    @extend_schema(parameters=ORGANISATION_PARAMETERS, request=None, responses={201: s.CredentialRotatedSerializer})
    @action(detail=True, methods=["post"])
    def rotate(self, request: Request, pk: str | None = None) -> Response:
        """Add a second active SecretKey (shown once); revoke the old one when clients switched."""
        credential = self.get_object()
        secret, plaintext = services.credential_rotate(credential=credential, actor=self.actor)
        body = {"access_key": credential.access_key, "secret": s.CredentialSecretSerializer(secret).data,
                "secret_key": plaintext}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=ORGANISATION_PARAMETERS, request=s.SecretRevokeSerializer,
                   responses={200: s.CredentialSerializer})
    @action(detail=True, methods=["post"], url_path="revoke-secret")
    def revoke_secret(self, request: Request, pk: str | None = None) -> Response:
        """Revoke one SecretKey (not the last active one)."""
        credential = self.get_object()
        data = s.SecretRevokeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.credential_secret_revoke(credential=credential, secret_id=data.validated_data["secret_id"],
                                          actor=self.actor)
        return self._render(self.get_queryset().get(pk=credential.pk))

    @extend_schema(parameters=ORGANISATION_PARAMETERS, request=None, responses={200: s.CredentialSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Revoke the whole credential and all its secrets (irreversible)."""
        credential = services.credential_revoke(credential=self.get_object(), actor=self.actor)
        return self._render(self.get_queryset().get(pk=credential.pk))


class AclRuleFilter(django_filters.FilterSet):
    credential = django_filters.NumberFilter(field_name="credential_id")
    instance = django_filters.NumberFilter(field_name="credential__instance_id")
    resource_type = django_filters.CharFilter()
    effect = django_filters.CharFilter()

    class Meta:
        model = AclRule
        fields = ["credential", "instance", "resource_type", "effect"]


@documented(s.AclRuleSerializer, s.AclRuleUpdateSerializer)
class AclRuleViewSet(ServiceViewSet):
    """ACL rules of credentials (admin or owner to change). Deny wins; see docs/tenancy.md."""

    queryset = AclRule.objects.select_related("credential")
    serializer_class = s.AclRuleSerializer
    update_serializer_class = s.AclRuleUpdateSerializer
    filterset_class = AclRuleFilter
    write_role = Role.ADMIN
    action_roles = {"evaluate": Role.VIEWER}

    def service_create(self, data: dict[str, Any]) -> Model:
        return services.acl_rule_create(actor=self.actor, **data)

    def service_update(self, obj: AclRule, data: dict[str, Any]) -> Model:
        return services.acl_rule_update(rule=obj, actor=self.actor, **data)

    def service_delete(self, obj: AclRule) -> None:
        services.acl_rule_delete(rule=obj, actor=self.actor)

    @extend_schema(parameters=ORGANISATION_PARAMETERS, request=s.AclEvaluateSerializer,
                   responses={200: s.AclDecisionSerializer})
    @action(detail=False, methods=["post"], filterset_class=None, pagination_class=None)
    def evaluate(self, request: Request) -> Response:
        """Preview the broker's decision for a credential, resource, action and client address."""
        data = s.AclEvaluateSerializer(data=request.data, context=self.get_serializer_context())
        data.is_valid(raise_exception=True)
        v = data.validated_data
        rules = list(self.get_queryset().filter(credential=v["credential"]))
        args = (v["resource_type"], v["name"], v["action"], v.get("source_ip"))
        allowed = v["credential"].enabled and acl.evaluate(rules, *args)
        matched = [r.pk for r in rules if acl.rule_applies(r, *args)]
        return Response({"allowed": allowed, "matched_rules": matched})
