"""Tenant scoping for console pages: the same rules as the REST API's
:class:`tenants.api.scoping.TenantScopedViewSet`, applied to server-rendered views.

* The organisation comes from :func:`tenants.selectors.membership_resolve` (the selector the API
  uses for ``X-Organisation``), fed with the organisation the user picked in the switcher (kept in
  the session). With nothing picked, the first membership is used.
* Objects are looked up through :func:`scoped`, which filters on the model's
  ``ORGANISATION_LOOKUP`` path first: another organisation's object is simply absent (404).
* The role check runs after that lookup, so a foreign object is a 404 and never a 403.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect

from tenants.errors import ApplicationError
from tenants.models import ROLE_RANK, Membership, Organisation, Role
from tenants.selectors import membership_resolve, memberships_of_user
from tenants.services import Actor

SESSION_KEY = "console_organisation_id"

M = TypeVar("M", bound=Model)


def current_membership(request: HttpRequest) -> Membership | None:
    """The signed-in user's membership in the organisation selected in this session."""
    cached = getattr(request, "_console_membership", None)
    if cached is not None:
        return cached
    selected = request.session.get(SESSION_KEY)
    membership: Membership | None = None
    if selected:
        try:
            membership = membership_resolve(user=request.user, selector=str(selected))
        except ApplicationError:  # no longer a member: fall back to the first organisation
            request.session.pop(SESSION_KEY, None)
    if membership is None:
        membership = memberships_of_user(user=request.user).first()
    request._console_membership = membership  # type: ignore[attr-defined]
    return membership


def select_organisation(request: HttpRequest, organisation_id: str) -> Membership:
    """Switch the session's organisation (404 for one the user does not belong to)."""
    try:
        membership = membership_resolve(user=request.user, selector=str(organisation_id))
    except ApplicationError as exc:
        raise Http404(exc.message) from exc
    request.session[SESSION_KEY] = membership.organisation_id
    request._console_membership = membership  # type: ignore[attr-defined]
    return membership


def has_role(membership: Membership | None, role: Role) -> bool:
    return membership is not None and ROLE_RANK[Role(membership.role)] >= ROLE_RANK[role]


def require_role(request: HttpRequest, role: Role) -> None:
    """403 when the caller's role in the current organisation is below ``role``."""
    if not has_role(getattr(request, "membership", None), role):
        raise PermissionDenied(f"This page needs the {Role(role).label.lower()} role or higher.")


def scoped(queryset: QuerySet[M], organisation: Organisation) -> QuerySet[M]:
    """``queryset`` restricted to ``organisation`` through the model's ``ORGANISATION_LOOKUP``."""
    lookup = queryset.model.ORGANISATION_LOOKUP  # type: ignore[attr-defined]
    return queryset.filter(**{lookup: organisation})


def scoped_get(queryset: QuerySet[M], organisation: Organisation, **filters: Any) -> M:
    obj = scoped(queryset, organisation).filter(**filters).first()
    if obj is None:
        raise Http404("Not found.")
    return obj


def actor(request: HttpRequest) -> Actor:
    return Actor(user=request.user, source_ip=request.META.get("REMOTE_ADDR") or None)


View = TypeVar("View", bound=Callable[..., HttpResponse])


def org_view(role: Role = Role.VIEWER) -> Callable[[View], View]:
    """Decorate a page that works inside the selected organisation.

    Sets ``request.membership`` and ``request.organisation``; signed-out users go to the login
    page, users without any organisation to the page that creates one, and a role below ``role``
    answers 403.
    """

    def decorate(view: View) -> View:
        @login_required
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = current_membership(request)
            if membership is None:
                return redirect("console:organisation-new")
            request.membership = membership  # type: ignore[attr-defined]
            request.organisation = membership.organisation  # type: ignore[attr-defined]
            require_role(request, role)
            return view(request, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
