"""Read operations (selectors): querysets the API and the console build on."""
from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import QuerySet

from tenants.errors import BadRequest, ErrorCode, NotFound
from tenants.models import ApiToken, Membership, Organisation, Plan


def memberships_of_user(*, user: AbstractBaseUser) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("organisation", "organisation__plan").order_by("organisation_id")


def organisations_of_user(*, user: AbstractBaseUser) -> QuerySet[Organisation]:
    return Organisation.objects.filter(memberships__user=user).select_related("plan").order_by("id")


def membership_resolve(*, user: AbstractBaseUser, selector: str | None) -> Membership:
    """The caller's membership for an ``X-Organisation`` value (organisation id or slug).

    Without a value the only membership is used; with several, ``organisation_required``. An
    organisation the caller does not belong to is "not found", exactly like a missing one.
    """
    memberships = memberships_of_user(user=user)
    if selector:
        selector = selector.strip()
        # Ids beyond 18 digits cannot exist (and would overflow the database's bigint).
        is_id = selector.isdigit() and len(selector) <= 18
        lookup = {"organisation_id": int(selector)} if is_id else {"organisation__slug": selector}
        membership = memberships.filter(**lookup).first()
        if membership is None:
            raise NotFound("Organisation not found.")
        return membership
    found = list(memberships[:2])
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound("You do not belong to any organisation.")
    raise BadRequest(
        "You belong to several organisations: choose one with the X-Organisation header (id or slug).",
        code=ErrorCode.ORGANISATION_REQUIRED,
        details={"organisations": [m.organisation.slug for m in memberships]},
    )


def api_tokens_of_user(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).order_by("id")


def plans_list() -> QuerySet[Plan]:
    return Plan.objects.order_by("id")
