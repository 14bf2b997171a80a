"""Role rules. Viewer reads; member also writes instances, topics and groups; admin manages
everything except plan and ownership; owner everything in the organisation."""
from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from tenants.models import ROLE_RANK, Role


def required_role(view: Any, request: Request) -> Role:
    """The minimum role for this request on a :class:`TenantScopedViewSet`-like view."""
    action = getattr(view, "action", None)
    overrides = getattr(view, "action_roles", {})
    if action in overrides:
        return overrides[action]
    if request.method in SAFE_METHODS:
        return getattr(view, "read_role", Role.VIEWER)
    return getattr(view, "write_role", Role.MEMBER)


class RolePermission(BasePermission):
    """Checks the caller's role in the selected organisation.

    For detail routes the check happens on the object (after the tenant-scoped lookup) so that an
    object of another organisation answers 404 before any role question is asked.
    """

    message = "Your role in this organisation does not allow this."

    def _allowed(self, request: Request, view: Any) -> bool:
        return ROLE_RANK[view.get_role()] >= ROLE_RANK[required_role(view, request)]

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if getattr(view, "detail", False):
            view.get_membership()  # resolve the organisation early (404/400 if unknown)
            return True
        return self._allowed(request, view)

    def has_object_permission(self, request: Request, view: Any, obj: Any) -> bool:
        return self._allowed(request, view)
