"""Credentials (AccessKey/SecretKey) and their ACL rules. Admins and owners only: for members and
viewers the page answers 403 once the instance itself has been found in their organisation
(another organisation's instance is 404 for everyone), see docs/console.md."""
from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from console.errors import apply_error
from console.forms import AclRuleForm, CredentialForm
from console.quickstart import samples
from console.render import page
from console.scoping import actor, org_view, require_role, scoped_get
from tenants import services
from tenants.errors import ApplicationError
from tenants.models import AclRule, Credential, Instance, Role


def _instance(request: HttpRequest, instance_id: int) -> Instance:
    instance = scoped_get(Instance.objects.select_related("organisation__plan"), request.organisation, pk=instance_id)
    require_role(request, Role.ADMIN)
    return instance


def _credential(request: HttpRequest, instance: Instance, credential_id: int) -> Credential:
    return scoped_get(Credential.objects.prefetch_related("secrets", "acl_rules"), request.organisation,
                      pk=credential_id, instance=instance)


def _shown_once(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"  # the page carries a SecretKey: keep it out of caches and history
    return response


@never_cache
@org_view()
@require_http_methods(["GET", "POST"])
def credential_list(request: HttpRequest, instance_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    form = CredentialForm(request.POST or None)
    created = None
    if request.method == "POST" and form.is_valid():
        try:
            credential, secret = services.credential_create(instance=instance, actor=actor(request), **form.cleaned_data)
        except ApplicationError as exc:
            apply_error(form, exc)
        else:
            created = {"credential": credential, "secret": secret,
                       "samples": samples(endpoint=instance.endpoint, namespace=instance.namespace,
                                          access_key=credential.access_key)}
            form = CredentialForm()
    rows = instance.credentials.annotate(
        active_secrets=Count("secrets", filter=Q(secrets__revoked_at__isnull=True), distinct=True),
        rule_count=Count("acl_rules", distinct=True),
    ).order_by("revoked_at", "-id")
    return _shown_once(page(request, "console/credentials/list.html", {
        "section": "instances", "instance": instance, "rows": rows, "form": form, "created": created,
    }, status=400 if form.errors else 200))


@never_cache
@org_view()
@require_http_methods(["GET", "POST"])
def credential_detail(request: HttpRequest, instance_id: int, credential_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    credential = _credential(request, instance, credential_id)
    form = AclRuleForm(request.POST or None, initial={"effect": "allow"})
    if request.method == "POST" and form.is_valid():
        try:
            services.acl_rule_create(credential=credential, actor=actor(request), **form.cleaned_data)
        except ApplicationError as exc:
            apply_error(form, exc)
        else:
            messages.success(request, "ACL rule added.")
            return redirect("console:credential", instance.pk, credential.pk)
    return _credential_page(request, instance, credential, form)


def _credential_page(request: HttpRequest, instance: Instance, credential: Credential, form: AclRuleForm,
                     rotated: str | None = None) -> HttpResponse:
    return _shown_once(page(request, "console/credentials/detail.html", {
        "section": "instances", "instance": instance, "credential": credential, "form": form, "rotated": rotated,
        "secrets": credential.secrets.order_by("revoked_at", "id"), "rules": credential.acl_rules.order_by("id"),
    }, status=400 if form.errors else 200))


@never_cache
@org_view()
@require_POST
def credential_rotate(request: HttpRequest, instance_id: int, credential_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    credential = _credential(request, instance, credential_id)
    try:
        _secret, plaintext = services.credential_rotate(credential=credential, actor=actor(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("console:credential", instance.pk, credential.pk)
    return _credential_page(request, instance, credential, AclRuleForm(initial={"effect": "allow"}), rotated=plaintext)


@org_view()
@require_POST
def credential_secret_revoke(request: HttpRequest, instance_id: int, credential_id: int, secret_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    credential = _credential(request, instance, credential_id)
    try:
        services.credential_secret_revoke(credential=credential, secret_id=secret_id, actor=actor(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "SecretKey revoked: clients still using it are refused from now on.")
    return redirect("console:credential", instance.pk, credential.pk)


@org_view()
@require_POST
def credential_revoke(request: HttpRequest, instance_id: int, credential_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    credential = _credential(request, instance, credential_id)
    try:
        services.credential_revoke(credential=credential, actor=actor(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Credential {credential.access_key} revoked for good.")
    return redirect("console:credentials", instance.pk)


@org_view()
@require_POST
def acl_rule_delete(request: HttpRequest, instance_id: int, credential_id: int, rule_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    credential = _credential(request, instance, credential_id)
    rule = scoped_get(AclRule.objects.all(), request.organisation, pk=rule_id, credential=credential)
    try:
        services.acl_rule_delete(rule=rule, actor=actor(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "ACL rule deleted.")
    return redirect("console:credential", instance.pk, credential.pk)
