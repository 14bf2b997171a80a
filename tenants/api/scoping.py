"""The one tenant-scoping base for every tenant-owned API view.

:class:`TenantScopedViewSet` resolves the caller's organisation (``X-Organisation`` header or
``?org=``, id or slug; the only membership by default) and filters every queryset on the model's
``ORGANISATION_LOOKUP`` path before anything else runs. Subclasses narrow results through
:meth:`safely_filter_queryset`; overriding ``get_queryset`` is refused at class creation, and
the only unscoped access is the alarmingly named :meth:`dangerously_get_unscoped_queryset`.
Objects of other organisations are thus simply absent: they answer 404, never 403.
"""
from __future__ import annotations

from typing import Any, ClassVar

from django.db.models import Model, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import viewsets
from rest_framework.request import Request

from tenants.models import Membership, Organisation, Role
from tenants.selectors import membership_resolve
from tenants.services import Actor

ORGANISATION_HEADER = "X-Organisation"

ORGANISATION_PARAMETERS = [
    OpenApiParameter(
        ORGANISATION_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
        description="Organisation id or slug; optional when you belong to exactly one.",
    ),
]


def actor_from_request(request: Request) -> Actor:
    """The audit actor: the authenticated user and the client address of the request."""
    return Actor(user=request.user, source_ip=request.META.get("REMOTE_ADDR") or None)


class OrganisationContextMixin:
    """Resolves and caches the caller's membership in the selected organisation."""

    request: Request

    def get_membership(self) -> Membership:
        cached = getattr(self.request, "_tenant_membership", None)
        if cached is None:
            selector = self.request.headers.get(ORGANISATION_HEADER) or self.request.query_params.get("org")
            cached = membership_resolve(user=self.request.user, selector=selector)
            self.request._tenant_membership = cached  # type: ignore[attr-defined]
        return cached

    def get_organisation(self) -> Organisation:
        return self.get_membership().organisation

    def get_role(self) -> Role:
        return Role(self.get_membership().role)

    @property
    def actor(self) -> Actor:
        return actor_from_request(self.request)


class TenantScopedViewSet(OrganisationContextMixin, viewsets.GenericViewSet):
    """Base of every tenant-owned viewset. Set ``queryset`` (a model manager queryset) and the
    role rules (:class:`tenants.api.permissions.RolePermission`); never override ``get_queryset``."""

    #: Minimum role to read, to write, and per-action overrides (see RolePermission).
    read_role: ClassVar[Role] = Role.VIEWER
    write_role: ClassVar[Role] = Role.MEMBER
    action_roles: ClassVar[dict[str, Role]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "get_queryset" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__} overrides get_queryset: narrow with safely_filter_queryset() instead "
                "(or, after review, dangerously_get_unscoped_queryset())."
            )

    def get_queryset(self) -> QuerySet[Any]:
        base = self.dangerously_get_unscoped_queryset()
        if getattr(self, "swagger_fake_view", False):  # schema generation: no request user
            return base.none()
        model: type[Model] = base.model
        scoped = base.filter(**{model.ORGANISATION_LOOKUP: self.get_organisation()})  # type: ignore[attr-defined]
        return self.safely_filter_queryset(scoped)

    def safely_filter_queryset(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Hook: narrow or annotate the already tenant-scoped queryset."""
        return queryset

    def dangerously_get_unscoped_queryset(self) -> QuerySet[Any]:
        """ALL organisations' rows. Only the scoping base itself should call this."""
        return self.queryset.all()  # type: ignore[union-attr]

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        context["scoping_view"] = self
        return context
