"""Sign-up, login, logout, password reset, organisations, members, invitations and API tokens."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from console import ratelimit
from console.errors import apply_error
from console.forms import (
    ApiTokenForm,
    ConfirmNameForm,
    InvitationForm,
    LoginForm,
    MemberRoleForm,
    OrganisationForm,
    PasswordResetRequestForm,
    PlanForm,
    SignupForm,
)
from console.render import page
from console.scoping import (
    SESSION_KEY,
    actor,
    has_role,
    org_view,
    require_role,
    scoped,
    scoped_get,
    select_organisation,
)
from tenants import services
from tenants.errors import ApplicationError, ErrorCode
from tenants.models import Invitation, Membership, Role
from tenants.selectors import api_tokens_of_user, plans_list


def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("console:instances")
    return page(request, "console/home.html")


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if not ratelimit.allow(request, "signup"):
            form.add_error(None, "Too many sign-ups from your address. Try again in a minute.")
        else:
            try:
                user, _organisation = services.user_signup(
                    organisation_name=form.cleaned_data["organisation_name"], email=form.cleaned_data["email"],
                    password=form.cleaned_data["password"], actor=actor(request),
                )
            except ApplicationError as exc:
                if exc.code == ErrorCode.EMAIL_TAKEN:
                    form.add_error("email", exc.message)
                else:
                    apply_error(form, exc)
            else:
                return page(request, "console/auth/signup_done.html", {"email": user.email})
    return page(request, "console/auth/signup.html", {"form": form}, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = ""
    if request.method == "POST" and form.is_valid():
        if not ratelimit.allow(request, "login"):
            form.add_error(None, "Too many login attempts. Try again in a minute.")
        else:
            try:
                user = services.user_authenticate(request=request, email=form.cleaned_data["email"],
                                                  password=form.cleaned_data["password"])
            except ApplicationError as exc:
                form.add_error(None, exc.message)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                return redirect(next_url or "console:instances")
    return page(request, "console/auth/login.html", {"form": form, "next": next_url}, status=400 if form.errors else 200)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    messages.info(request, "You are logged out.")
    return redirect("console:login")


@require_http_methods(["GET", "POST"])
def password_reset_request(request: HttpRequest) -> HttpResponse:
    form = PasswordResetRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if not ratelimit.allow(request, "password_reset"):
            form.add_error(None, "Too many requests. Try again in a minute.")
        else:
            services.password_reset_request(email=form.cleaned_data["email"])
            # Same answer whether or not the address has an account (no probing).
            return page(request, "console/auth/password_reset_sent.html", {"email": form.cleaned_data["email"]})
    return page(request, "console/auth/password_reset.html", {"form": form}, status=400 if form.errors else 200)


# --- organisations ---------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def organisation_new(request: HttpRequest) -> HttpResponse:
    form = OrganisationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        organisation = services.organisation_create(name=form.cleaned_data["name"], owner=request.user, actor=actor(request))
        select_organisation(request, str(organisation.pk))
        messages.success(request, f"Organisation “{organisation.name}” created; you are its owner.")
        return redirect("console:instances")
    return page(request, "console/org/new.html", {"form": form})


@login_required
@require_POST
def organisation_switch(request: HttpRequest) -> HttpResponse:
    membership = select_organisation(request, request.POST.get("organisation", ""))
    messages.info(request, f"Now working in “{membership.organisation.name}”.")
    return redirect("console:instances")


# --- members and invitations ----------------------------------------------------------------


@org_view()
def members(request: HttpRequest) -> HttpResponse:
    return _members_page(request, InvitationForm(actor_role=request.membership.role))


def _members_page(request: HttpRequest, invite_form: InvitationForm, status: int = 200) -> HttpResponse:
    organisation, role = request.organisation, request.membership.role
    rows = scoped(Membership.objects.select_related("user"), organisation).order_by("id")
    invitations = []
    if has_role(request.membership, Role.ADMIN):
        invitations = scoped(Invitation.objects.filter(accepted_at__isnull=True, revoked_at__isnull=True), organisation).order_by("-id")
    return page(request, "console/org/members.html", {
        "section": "members", "rows": rows, "invitations": invitations, "invite_form": invite_form,
        "role_form": MemberRoleForm(actor_role=role),
    }, status=status)


@org_view(Role.ADMIN)
@require_POST
def invitation_create(request: HttpRequest) -> HttpResponse:
    form = InvitationForm(request.POST, actor_role=request.membership.role)
    if form.is_valid():
        try:
            invitation, _key = services.invitation_create(
                organisation=request.organisation, email=form.cleaned_data["email"], role=form.cleaned_data["role"],
                actor=actor(request), actor_role=request.membership.role,
            )
        except ApplicationError as exc:
            apply_error(form, exc)
        else:
            messages.success(request, f"Invitation e-mailed to {invitation.email}.")
            return redirect("console:members")
    return _members_page(request, form, status=400)


@org_view()
@require_POST
def invitation_revoke(request: HttpRequest, invitation_id: int) -> HttpResponse:
    invitation = scoped_get(Invitation.objects.all(), request.organisation, pk=invitation_id)
    require_role(request, Role.ADMIN)
    services.invitation_revoke(invitation=invitation, actor=actor(request))
    messages.success(request, f"Invitation for {invitation.email} revoked.")
    return redirect("console:members")


@org_view()
@require_POST
def member_update(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = scoped_get(Membership.objects.select_related("user"), request.organisation, pk=membership_id)
    require_role(request, Role.ADMIN)
    form = MemberRoleForm(request.POST, actor_role=request.membership.role)
    if not form.is_valid():
        messages.error(request, "Choose a valid role.")
        return redirect("console:members")
    try:
        services.membership_update(membership=membership, role=form.cleaned_data["role"], actor=actor(request),
                                   actor_role=request.membership.role)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{membership.user.email} is now {form.cleaned_data['role']}.")
    return redirect("console:members")


@org_view()
@require_POST
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    membership = scoped_get(Membership.objects.select_related("user"), request.organisation, pk=membership_id)
    leaving = membership.user_id == request.user.pk
    if not leaving:
        require_role(request, Role.ADMIN)
    try:
        services.membership_delete(membership=membership, actor=actor(request), actor_role=request.membership.role)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("console:members")
    messages.success(request, "You left the organisation." if leaving else f"{membership.user.email} removed.")
    return redirect("console:instances" if leaving else "console:members")


# --- API tokens (personal) ---------------------------------------------------------------------


@org_view()
@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        if not ratelimit.allow(request, "token_create"):
            form.add_error(None, "Too many tokens created. Try again in a minute.")
        else:
            token, raw = services.api_token_create(user=request.user, name=form.cleaned_data["name"], actor=actor(request))
            created = {"token": token, "raw": raw}
            form = ApiTokenForm()
    rows = api_tokens_of_user(user=request.user).filter(revoked_at__isnull=True)
    return page(request, "console/org/tokens.html", {"section": "tokens", "form": form, "rows": rows, "created": created})


@org_view()
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = api_tokens_of_user(user=request.user).filter(pk=token_id).first()
    if token is None:
        raise Http404("Not found.")
    services.api_token_revoke(token=token, actor=actor(request))
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("console:tokens")



# --- organisation settings -------------------------------------------------------------------


@org_view()
@require_http_methods(["GET", "POST"])
def organisation_settings(request: HttpRequest) -> HttpResponse:
    """Rename (admins), switch between self-service plans (owners; operators any plan), delete
    (owners, once no instance is left)."""
    organisation = request.organisation
    plans = [p for p in plans_list() if p.self_service or request.user.is_staff]
    name_form = OrganisationForm(initial={"name": organisation.name})
    plan_form = PlanForm(initial={"plan": organisation.plan.code}, plans=[(p.code, p.name) for p in plans])
    confirm_form = ConfirmNameForm(expected=organisation.name)
    action = request.POST.get("action")
    if request.method == "POST":
        try:
            if action == "rename":
                require_role(request, Role.ADMIN)
                name_form = OrganisationForm(request.POST)
                if name_form.is_valid():
                    services.organisation_update(organisation=organisation, name=name_form.cleaned_data["name"],
                                                 actor=actor(request))
                    messages.success(request, "Organisation renamed.")
                    return redirect("console:organisation-settings")
            elif action == "plan":
                require_role(request, Role.OWNER)
                plan_form = PlanForm(request.POST, plans=[(p.code, p.name) for p in plans])
                if plan_form.is_valid():
                    plan = next(p for p in plans if p.code == plan_form.cleaned_data["plan"])
                    services.organisation_plan_assign(organisation=organisation, plan=plan, actor=actor(request),
                                                      operator=request.user.is_staff)
                    messages.success(request, f"{organisation.name} is now on the {plan.name} plan.")
                    return redirect("console:organisation-settings")
            elif action == "delete":
                require_role(request, Role.OWNER)
                confirm_form = ConfirmNameForm(request.POST, expected=organisation.name)
                if confirm_form.is_valid():
                    services.organisation_delete(organisation=organisation, actor=actor(request))
                    request.session.pop(SESSION_KEY, None)
                    messages.success(request, f"Organisation “{organisation.name}” deleted.")
                    return redirect("console:instances")
        except ApplicationError as exc:
            target = {"rename": name_form, "plan": plan_form, "delete": confirm_form}.get(action or "")
            if target is not None:
                apply_error(target, exc)
    return page(request, "console/org/settings.html", {
        "section": "settings", "name_form": name_form, "plan_form": plan_form, "confirm_form": confirm_form,
        "plans": plans,
    }, status=400 if any(f.errors for f in (name_form, plan_form, confirm_form)) else 200)
