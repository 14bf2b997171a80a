"""People and organisations: sign-up, e-mail confirmation, login, password reset, invitations,
memberships and personal API tokens."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Final

from django.contrib.auth import authenticate, get_user_model, password_validation
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.utils.text import slugify

from tenants.emails import public_url, send_templated
from tenants.errors import BadRequest, Conflict, ErrorCode, Forbidden, InvalidInput, Unauthorized
from tenants.models import ROLE_RANK, ApiToken, Instance, Invitation, Membership, Organisation, Role
from tenants.services.audit import Actor, audit_record, snapshot
from tenants.services.plans import plan_get_default

User = get_user_model()

CONFIRM_SALT: Final = "tenants.confirm-email"
CONFIRM_MAX_AGE: Final = dt.timedelta(days=3)
INVITATION_TTL: Final = dt.timedelta(days=7)
API_TOKEN_PREFIX: Final = "mqp_"


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _normalise_email(email: str) -> str:
    return User.objects.normalize_email(email.strip()).lower()


def _validate_password(password: str, user: AbstractBaseUser | None = None) -> None:
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        raise InvalidInput("password", " ".join(exc.messages), reason_code="weak_password") from exc


def _unique_slug(name: str) -> str:
    base = slugify(name)[:48] or "org"
    slug = base
    while Organisation.objects.filter(slug=slug).exists():
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug


# --- organisations ---------------------------------------------------------------------------


@transaction.atomic
def organisation_create(*, name: str, owner: AbstractBaseUser, actor: Actor) -> Organisation:
    """Create an organisation on the default plan with ``owner`` as its first owner."""
    organisation = Organisation.objects.create(name=name, slug=_unique_slug(name), plan=plan_get_default())
    membership = Membership.objects.create(organisation=organisation, user=owner, role=Role.OWNER)
    audit_record(actor=actor, organisation=organisation, obj=organisation, action="create", after=snapshot(organisation))
    audit_record(actor=actor, organisation=organisation, obj=membership, action="create", after=snapshot(membership))
    return organisation


@transaction.atomic
def organisation_update(*, organisation: Organisation, name: str, actor: Actor) -> Organisation:
    before = snapshot(organisation)
    organisation.name = name
    organisation.save(update_fields=["name"])
    audit_record(actor=actor, organisation=organisation, obj=organisation, action="update",
                 before=before, after=snapshot(organisation))
    return organisation


@transaction.atomic
def organisation_delete(*, organisation: Organisation, actor: Actor) -> None:
    """Delete an organisation that has no instances left (deleting ones included: the fleet
    still owns them)."""
    if Instance.objects.filter(organisation=organisation).exists():
        raise Conflict("Delete the organisation's instances first.", code=ErrorCode.ORGANISATION_NOT_EMPTY)
    audit_record(actor=actor, organisation=None, obj=organisation, action="delete", before=snapshot(organisation))
    organisation.delete()


# --- sign-up and e-mail confirmation -----------------------------------------------------------


def _confirmation_token(user: AbstractBaseUser) -> str:
    return signing.dumps({"u": user.pk, "e": user.email}, salt=CONFIRM_SALT)


def _send_confirmation(user: AbstractBaseUser, organisation: Organisation) -> None:
    token = _confirmation_token(user)
    send_templated(
        to=user.email,
        subject="Confirm your e-mail address",
        template="confirm_email",
        context={
            "organisation": organisation.name,
            "link": public_url(reverse("tenants:confirm-email", args=[token])),
            "valid_days": CONFIRM_MAX_AGE.days,
        },
    )


@transaction.atomic
def user_signup(*, organisation_name: str, email: str, password: str, actor: Actor) -> tuple[AbstractBaseUser, Organisation]:
    """Create an inactive user owning a new organisation and e-mail a confirmation link.

    The user cannot log in until :func:`user_confirm_email` activates the account.
    """
    email = _normalise_email(email)
    if User.objects.filter(username=email).exists() or User.objects.filter(email__iexact=email).exists():
        raise Conflict("An account with this e-mail already exists.", code=ErrorCode.EMAIL_TAKEN)
    user = User(username=email, email=email, is_active=False)
    _validate_password(password, user)
    user.set_password(password)
    user.save()
    organisation = organisation_create(name=organisation_name, owner=user, actor=Actor(user=user, source_ip=actor.source_ip))
    # Sent inside the transaction, as its last step: if the mail cannot be sent the sign-up rolls
    # back instead of leaving an account nobody can confirm.
    _send_confirmation(user, organisation)
    return user, organisation


@transaction.atomic
def user_confirm_email(*, token: str) -> AbstractBaseUser:
    """Activate the account named by a signed, expiring confirmation token."""
    try:
        data = signing.loads(token, salt=CONFIRM_SALT, max_age=CONFIRM_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise BadRequest("The confirmation link has expired.", code=ErrorCode.INVALID_TOKEN) from exc
    except signing.BadSignature as exc:
        raise BadRequest("The confirmation link is invalid.", code=ErrorCode.INVALID_TOKEN) from exc
    user = User.objects.filter(pk=data.get("u"), email=data.get("e")).first()
    if user is None:
        raise BadRequest("The confirmation link is invalid.", code=ErrorCode.INVALID_TOKEN)
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
    return user


def user_authenticate(*, request: object, email: str, password: str) -> AbstractBaseUser:
    """Check e-mail + password; unconfirmed accounts get ``email_not_confirmed``."""
    email = _normalise_email(email)
    user = authenticate(request, username=email, password=password)
    if user is not None:
        return user
    candidate = User.objects.filter(username=email).first()
    if candidate is not None and not candidate.is_active and candidate.check_password(password):
        raise Forbidden("Confirm your e-mail address before logging in.", code=ErrorCode.EMAIL_NOT_CONFIRMED)
    raise Unauthorized("Wrong e-mail or password.")


# --- password reset ------------------------------------------------------------------------------


def password_reset_request(*, email: str) -> None:
    """E-mail a reset link if an active account has this address; silent otherwise (no probing)."""
    user = User.objects.filter(username=_normalise_email(email), is_active=True).first()
    if user is None:
        return
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    send_templated(
        to=user.email,
        subject="Reset your password",
        template="password_reset",
        context={"link": public_url(reverse("tenants:password-reset", args=[uid, token])), "uid": uid, "token": token},
    )


@transaction.atomic
def password_reset_confirm(*, uid: str, token: str, password: str) -> AbstractBaseUser:
    """Set a new password with a token from :func:`password_reset_request` (single use: the token
    depends on the password hash, so it dies once used)."""
    try:
        user = User.objects.get(pk=int(force_str(urlsafe_base64_decode(uid))))
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        user = None
    if user is None or not default_token_generator.check_token(user, token):
        raise BadRequest("The reset link is invalid or has expired.", code=ErrorCode.INVALID_TOKEN)
    _validate_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    return user


# --- invitations and memberships ---------------------------------------------------------------


def _require_can_grant(*, organisation: Organisation, actor_role: str, role: str) -> None:
    """Admins manage members up to admin; only owners grant or take away ownership."""
    if ROLE_RANK[Role(role)] > ROLE_RANK[Role(actor_role)]:
        raise Forbidden(f"A {actor_role} cannot grant the {role} role.")


@transaction.atomic
def invitation_create(*, organisation: Organisation, email: str, role: str, actor: Actor, actor_role: str) -> tuple[Invitation, str]:
    """Invite ``email`` with ``role`` and e-mail the link. Returns the invitation and its key."""
    _require_can_grant(organisation=organisation, actor_role=actor_role, role=role)
    email = _normalise_email(email)
    if Membership.objects.filter(organisation=organisation, user__username=email).exists():
        raise Conflict("This person is already a member.", code=ErrorCode.ALREADY_EXISTS)
    key = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organisation=organisation, email=email, role=role, key_hash=_sha256(key),
        invited_by=actor.user_or_none, expires_at=timezone.now() + INVITATION_TTL,
    )
    audit_record(actor=actor, organisation=organisation, obj=invitation, action="create", after=snapshot(invitation))
    inviter = getattr(actor.user_or_none, "email", "") or "An administrator"
    send_templated(  # last step of the transaction: no mail, no invitation
        to=email,
        subject=f"Invitation to {organisation.name}",
        template="invitation",
        context={
            "inviter": inviter, "organisation": organisation.name, "role": role, "key": key,
            "link": public_url(reverse("tenants:invitation-accept", args=[key])), "valid_days": INVITATION_TTL.days,
        },
    )
    return invitation, key


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Actor) -> Invitation:
    if invitation.accepted_at or invitation.revoked_at:
        raise Conflict("The invitation is no longer pending.")
    before = snapshot(invitation)
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_record(actor=actor, organisation=invitation.organisation, obj=invitation, action="revoke",
                 before=before, after=snapshot(invitation))
    return invitation


def invitation_get_pending(*, key: str) -> Invitation:
    """The pending, unexpired invitation for a link key, or ``invalid_token``."""
    invitation = (
        Invitation.objects.select_related("organisation")
        .filter(key_hash=_sha256(key), accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())
        .first()
    )
    if invitation is None:
        raise BadRequest("The invitation is invalid, used or expired.", code=ErrorCode.INVALID_TOKEN)
    return invitation


@transaction.atomic
def invitation_accept(*, key: str, password: str, actor: Actor) -> Membership:
    """Accept an invitation. A new user is created (already confirmed: the link proves the
    address) with ``password``; an existing user must prove it with their current password
    (or be the logged-in user named by the invitation)."""
    invitation = invitation_get_pending(key=key)
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    user = User.objects.filter(username=invitation.email).first()
    logged_in = actor.user_or_none
    if user is None:
        user = User(username=invitation.email, email=invitation.email, is_active=True)
        _validate_password(password, user)
        user.set_password(password)
        user.save()
    elif not (logged_in is not None and logged_in.pk == user.pk) and not user.check_password(password):
        raise Unauthorized("Wrong password for the invited account.")
    elif not user.is_active:
        user.is_active = True  # the invitation link confirms the address as well
        user.save(update_fields=["is_active"])
    membership, created = Membership.objects.get_or_create(
        organisation=invitation.organisation, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    who = Actor(user=user, source_ip=actor.source_ip)
    audit_record(actor=who, organisation=invitation.organisation, obj=invitation, action="accept", after=snapshot(invitation))
    if created:
        audit_record(actor=who, organisation=invitation.organisation, obj=membership, action="create", after=snapshot(membership))
    return membership


def _owner_count(organisation: Organisation) -> int:
    return Membership.objects.filter(organisation=organisation, role=Role.OWNER).count()


@transaction.atomic
def membership_update(*, membership: Membership, role: str, actor: Actor, actor_role: str) -> Membership:
    """Change a member's role. Only owners touch ownership; the last owner stays an owner."""
    _require_can_grant(organisation=membership.organisation, actor_role=actor_role, role=role)
    _require_can_grant(organisation=membership.organisation, actor_role=actor_role, role=membership.role)
    if membership.role == Role.OWNER and role != Role.OWNER and _owner_count(membership.organisation) == 1:
        raise Conflict("An organisation needs at least one owner.", code=ErrorCode.LAST_OWNER)
    before = snapshot(membership)
    membership.role = role
    membership.save(update_fields=["role"])
    audit_record(actor=actor, organisation=membership.organisation, obj=membership, action="update",
                 before=before, after=snapshot(membership))
    return membership


@transaction.atomic
def membership_delete(*, membership: Membership, actor: Actor, actor_role: str) -> None:
    """Remove a member (anyone may leave; removing others follows the role rules)."""
    leaving = actor.user_or_none is not None and actor.user_or_none.pk == membership.user_id
    if not leaving:
        if ROLE_RANK[Role(actor_role)] < ROLE_RANK[Role.ADMIN]:
            raise Forbidden("Only admins and owners remove other members.")
        _require_can_grant(organisation=membership.organisation, actor_role=actor_role, role=membership.role)
    if membership.role == Role.OWNER and _owner_count(membership.organisation) == 1:
        raise Conflict("An organisation needs at least one owner.", code=ErrorCode.LAST_OWNER)
    audit_record(actor=actor, organisation=membership.organisation, obj=membership, action="delete", before=snapshot(membership))
    membership.delete()


# --- API tokens ---------------------------------------------------------------------------------


@transaction.atomic
def api_token_create(*, user: AbstractBaseUser, name: str, actor: Actor) -> tuple[ApiToken, str]:
    """Create a personal API token; the plaintext is returned once and only its hash is kept."""
    raw = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=raw[:12], key_hash=_sha256(raw))
    audit_record(actor=actor, organisation=None, obj=token, action="create", after=snapshot(token))
    return token, raw


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: Actor) -> ApiToken:
    if token.revoked_at is None:
        before = snapshot(token)
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, organisation=None, obj=token, action="revoke", before=before, after=snapshot(token))
    return token


def api_token_authenticate(raw: str) -> ApiToken | None:
    """The live token for a presented plaintext (and stamp ``last_used_at`` at most once a minute)."""
    token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=_sha256(raw), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1):
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


