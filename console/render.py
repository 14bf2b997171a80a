"""``page()``: render a console template with the navigation context every page needs."""
from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from console.scoping import current_membership, has_role
from tenants.models import Role
from tenants.selectors import memberships_of_user


def nav_context(request: HttpRequest) -> dict[str, Any]:
    if not request.user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None) or current_membership(request)
    return {
        "membership": membership,
        "organisation": membership.organisation if membership else None,
        "memberships": list(memberships_of_user(user=request.user)),
        "can_write": has_role(membership, Role.MEMBER),
        "is_admin": has_role(membership, Role.ADMIN),
        "is_owner": has_role(membership, Role.OWNER),
    }


def page(request: HttpRequest, template: str, context: dict[str, Any] | None = None, *, status: int = 200) -> HttpResponse:
    return render(request, template, {**nav_context(request), **(context or {})}, status=status)
