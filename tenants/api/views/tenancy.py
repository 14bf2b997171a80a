"""Organisations, members, invitations, plans and the audit log."""
from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from tenants import selectors, services
from tenants.api import serializers as s
from tenants.api.permissions import RolePermission
from tenants.api.scoping import ORGANISATION_PARAMETERS, TenantScopedViewSet, actor_from_request
from tenants.errors import Forbidden, NotFound
from tenants.models import ROLE_RANK, AuditLog, Invitation, Membership, Organisation, Plan, Role


class OrganisationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The caller's organisations (any of them, independent of ``X-Organisation``).

    Reading needs membership; renaming needs admin; deleting and changing the plan need owner.
    """

    serializer_class = s.OrganisationSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return Organisation.objects.none()
        return selectors.organisations_of_user(user=self.request.user)

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False) and self.request.user.is_authenticated:
            context["roles"] = dict(Membership.objects.filter(user=self.request.user).values_list("organisation_id", "role"))
        return context

    def _require(self, organisation: Organisation, role: Role) -> None:
        current = Membership.objects.get(organisation=organisation, user=self.request.user).role
        if ROLE_RANK[Role(current)] < ROLE_RANK[role]:
            raise Forbidden(f"This needs the {role} role.")

    @extend_schema(request=s.OrganisationSerializer, responses={201: s.OrganisationSerializer})
    def create(self, request: Request) -> Response:
        """Create another organisation; you become its owner."""
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        organisation = services.organisation_create(name=data.validated_data["name"], owner=request.user,
                                                    actor=actor_from_request(request))
        return Response(self.get_serializer(organisation).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.OrganisationSerializer, responses={200: s.OrganisationSerializer})
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        """Rename (admin or owner)."""
        organisation = self.get_object()
        self._require(organisation, Role.ADMIN)
        data = self.get_serializer(organisation, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        name = data.validated_data.get("name", organisation.name)
        organisation = services.organisation_update(organisation=organisation, name=name, actor=actor_from_request(request))
        return Response(self.get_serializer(organisation).data)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, pk: str | None = None) -> Response:
        """Delete (owner; only when no instances are left)."""
        organisation = self.get_object()
        self._require(organisation, Role.OWNER)
        services.organisation_delete(organisation=organisation, actor=actor_from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=s.OrganisationPlanSerializer, responses={200: s.OrganisationSerializer})
    @action(detail=True, methods=["post"], serializer_class=s.OrganisationPlanSerializer)
    def plan(self, request: Request, pk: str | None = None) -> Response:
        """Switch to a self-service plan (owner). Operators assign any plan via /plans/{code}/assign/."""
        organisation = self.get_object()
        self._require(organisation, Role.OWNER)
        data = s.OrganisationPlanSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        organisation = services.organisation_plan_assign(
            organisation=organisation, plan=data.validated_data["plan"], actor=actor_from_request(request),
            operator=request.user.is_staff,
        )
        return Response(s.OrganisationSerializer(organisation, context=self.get_serializer_context()).data)


class PlanViewSet(viewsets.ReadOnlyModelViewSet):
    """The plan catalogue (readable by every signed-in user); operators assign plans."""

    serializer_class = s.PlanSerializer
    lookup_field = "code"
    pagination_class = None

    def get_queryset(self) -> Any:
        return selectors.plans_list()

    @extend_schema(request=s.PlanAssignSerializer, responses={200: s.OrganisationSerializer})
    @action(detail=True, methods=["post"], permission_classes=[IsAdminUser], serializer_class=s.PlanAssignSerializer)
    def assign(self, request: Request, code: str | None = None) -> Response:
        """Operators (staff) only: put an organisation on this plan (refused if its usage would not fit)."""
        plan = self.get_object()
        data = s.PlanAssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        organisation = Organisation.objects.filter(pk=data.validated_data["organisation"]).first()
        if organisation is None:
            raise NotFound("Organisation not found.")
        organisation = services.organisation_plan_assign(organisation=organisation, plan=plan,
                                                         actor=actor_from_request(request), operator=True)
        return Response(s.OrganisationSerializer(organisation).data)


@extend_schema_view(
    list=extend_schema(parameters=ORGANISATION_PARAMETERS),
    retrieve=extend_schema(parameters=ORGANISATION_PARAMETERS),
    partial_update=extend_schema(parameters=ORGANISATION_PARAMETERS, request=s.MembershipUpdateSerializer,
                                 responses={200: s.MembershipSerializer}),
    destroy=extend_schema(parameters=ORGANISATION_PARAMETERS, responses={204: None}),
)
class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Members of the selected organisation. Admins manage roles up to admin; only owners grant or
    remove ownership; everyone may leave; the last owner stays."""

    queryset = Membership.objects.select_related("user")
    serializer_class = s.MembershipSerializer
    permission_classes = [RolePermission]
    http_method_names = ["get", "patch", "delete", "head", "options"]
    write_role = Role.ADMIN
    action_roles = {"destroy": Role.VIEWER}  # leaving is allowed to all; the service checks the rest

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        membership = self.get_object()
        data = s.MembershipUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_update(membership=membership, role=data.validated_data["role"],
                                                actor=self.actor, actor_role=self.get_role())
        return Response(s.MembershipSerializer(membership).data)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.membership_delete(membership=self.get_object(), actor=self.actor, actor_role=self.get_role())
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_view(
    list=extend_schema(parameters=ORGANISATION_PARAMETERS),
    retrieve=extend_schema(parameters=ORGANISATION_PARAMETERS),
    create=extend_schema(parameters=ORGANISATION_PARAMETERS, responses={201: s.InvitationSerializer}),
    destroy=extend_schema(parameters=ORGANISATION_PARAMETERS, responses={204: None}),
)
class InvitationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Invitations of the selected organisation (admin or owner). DELETE revokes a pending one."""

    queryset = Invitation.objects.select_related("invited_by")
    serializer_class = s.InvitationSerializer
    permission_classes = [RolePermission]
    http_method_names = ["get", "post", "delete", "head", "options"]
    read_role = Role.ADMIN
    write_role = Role.ADMIN

    def create(self, request: Request) -> Response:
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, _key = services.invitation_create(
            organisation=self.get_organisation(), email=data.validated_data["email"], role=data.validated_data["role"],
            actor=self.actor, actor_role=self.get_role(),
        )
        return Response(self.get_serializer(invitation).data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.invitation_revoke(invitation=self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditLogFilter(django_filters.FilterSet):
    object_type = django_filters.CharFilter()
    object_id = django_filters.CharFilter()
    action = django_filters.CharFilter()
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = AuditLog
        fields = ["object_type", "object_id", "action", "created_after", "created_before"]


@extend_schema_view(
    list=extend_schema(parameters=ORGANISATION_PARAMETERS),
    retrieve=extend_schema(parameters=ORGANISATION_PARAMETERS),
)
class AuditLogViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The organisation's audit trail, newest first (admin or owner)."""

    queryset = AuditLog.objects.all()
    serializer_class = s.AuditLogSerializer
    permission_classes = [RolePermission]
    filterset_class = AuditLogFilter
    read_role = Role.ADMIN


__all__ = ["AuditLogViewSet", "InvitationViewSet", "MemberViewSet", "OrganisationViewSet", "PlanViewSet", "Plan"]
