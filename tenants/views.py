"""Tiny server-rendered pages behind the links in e-mails (the console links here too).
Each page calls the same service as its API twin."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from tenants.errors import ApplicationError
from tenants.services import Actor, invitation_accept, invitation_get_pending, password_reset_confirm, user_confirm_email


def _actor(request: HttpRequest) -> Actor:
    return Actor(user=request.user, source_ip=request.META.get("REMOTE_ADDR"))


@require_http_methods(["GET"])
def confirm_email(request: HttpRequest, token: str) -> HttpResponse:
    """Opening the link confirms the address (the token is signed and expires)."""
    try:
        user = user_confirm_email(token=token)
    except ApplicationError as exc:
        return render(request, "tenants/confirm_email.html", {"error": exc.message}, status=400)
    return render(request, "tenants/confirm_email.html", {"email": user.email})


@require_http_methods(["GET", "POST"])
def password_reset(request: HttpRequest, uid: str, token: str) -> HttpResponse:
    context: dict[str, object] = {}
    if request.method == "POST":
        try:
            password_reset_confirm(uid=uid, token=token, password=request.POST.get("password", ""))
            context["done"] = True
        except ApplicationError as exc:
            context["error"] = exc.message
    return render(request, "tenants/password_reset.html", context, status=400 if "error" in context else 200)


@require_http_methods(["GET", "POST"])
def invitation_accept_page(request: HttpRequest, key: str) -> HttpResponse:
    context: dict[str, object] = {}
    try:
        context["invitation"] = invitation_get_pending(key=key)
        if request.method == "POST":
            invitation_accept(key=key, password=request.POST.get("password", ""), actor=_actor(request))
            context["done"] = True
    except ApplicationError as exc:
        context["error"] = exc.message
    return render(request, "tenants/invitation_accept.html", context, status=400 if "error" in context else 200)
