"""Alert rules (per instance), the organisation's alert contacts, and the alert history.

Writes go through :mod:`brokers.services.alerting` (which audits them), with the REST API's role
rules (``brokers/api/alerts.py``): every role reads; members and above change rules; admins and
above change contacts. Objects are looked up scoped to the organisation first, so another
organisation's rule or contact is a 404 before any role question.
"""
from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from brokers.models import Alert, AlertContact, AlertRule, AlertStatus
from brokers.models.alerting import PLATFORM_KINDS, RuleKind
from brokers.services import alerting
from console.errors import apply_error
from console.forms import AlertContactForm, AlertRuleEditForm, AlertRuleForm
from console.render import page
from console.scoping import actor, has_role, org_view, require_role, scoped, scoped_get
from tenants.errors import ApplicationError
from tenants.models import Instance, InstanceStatus, Role

TENANT_KINDS = [(k.value, k.label) for k in RuleKind if k not in PLATFORM_KINDS]


def _rules_url(instance_id: int | None) -> str:
    url = reverse("console:alerts")
    return f"{url}?instance={instance_id}" if instance_id else url


@org_view()
@require_http_methods(["GET", "POST"])
def alerts(request: HttpRequest) -> HttpResponse:
    """Rules (all instances, or one with ``?instance=``), a form for a new rule, and the history."""
    organisation = request.organisation
    instances = scoped(Instance.objects.exclude(status=InstanceStatus.DELETING), organisation).order_by("name")
    only = None
    if request.GET.get("instance", "").isdigit():
        only = scoped_get(Instance.objects.all(), organisation, pk=int(request.GET["instance"]))
    form = AlertRuleForm(request.POST or None, instances=[(i.pk, i.name) for i in instances], kinds=TENANT_KINDS,
                         initial={"instance": only.pk if only else None, "enabled": True})
    if request.method == "POST":
        require_role(request, Role.MEMBER)
        if form.is_valid():
            data = dict(form.cleaned_data)
            instance = scoped_get(Instance.objects.all(), organisation, pk=data.pop("instance"))
            try:
                rule = alerting.alert_rule_create(instance=instance, actor=actor(request), **data)
            except ApplicationError as exc:
                apply_error(form, exc)
            else:
                messages.success(request, f"Alert rule “{rule.name}” created.")
                return redirect(_rules_url(only.pk if only else None))
    rules = scoped(AlertRule.objects.select_related("instance"), organisation).order_by("instance__name", "id")
    history = scoped(Alert.objects.select_related("rule", "instance"), organisation).order_by("-fired_at")
    if only is not None:
        rules, history = rules.filter(instance=only), history.filter(instance=only)
    status = request.GET.get("status")
    if status in AlertStatus.values:
        history = history.filter(status=status)
    query = "&".join(filter(None, [f"instance={only.pk}" if only else "", f"status={status}" if status else ""]))
    return page(request, "console/alerting/alerts.html", {
        "section": "alerts", "rules": rules, "history": Paginator(history, 50).get_page(request.GET.get("page")),
        "form": form, "status": status or "", "has_instances": instances.exists(), "only": only, "query": query,
        "contacts": scoped(AlertContact.objects.all(), organisation).order_by("email"),
    }, status=400 if form.errors else 200)


def _rule(request: HttpRequest, rule_id: int) -> AlertRule:
    return scoped_get(AlertRule.objects.select_related("instance"), request.organisation, pk=rule_id)


@org_view()
@require_http_methods(["GET", "POST"])
def alert_rule_edit(request: HttpRequest, rule_id: int) -> HttpResponse:
    """Threshold, duration, enabled, filters and recipients of one rule (members and above)."""
    rule = _rule(request, rule_id)
    require_role(request, Role.MEMBER)
    initial = {"name": rule.name, "enabled": rule.enabled, "threshold": rule.threshold, "topic": rule.topic,
               "group": rule.group, "duration_seconds": rule.duration_seconds,
               "recipients": ", ".join(rule.recipients or [])}
    form = AlertRuleEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changed = {k: v for k, v in form.cleaned_data.items() if v != getattr(rule, k)}
        try:
            if changed:
                alerting.alert_rule_update(rule=rule, actor=actor(request), **changed)
        except ApplicationError as exc:
            apply_error(form, exc)
        else:
            messages.success(request, f"Alert rule “{rule.name}” saved." if changed else "Nothing changed.")
            return redirect(_rules_url(rule.instance_id))
    return page(request, "console/alerting/rule_edit.html", {
        "section": "alerts", "rule": rule, "form": form, "unit": alerting.UNITS.get(rule.kind, ""),
        "cancel_url": _rules_url(rule.instance_id),
    }, status=400 if form.errors else 200)


@org_view()
@require_http_methods(["GET", "POST"])
def alert_rule_delete(request: HttpRequest, rule_id: int) -> HttpResponse:
    """A confirmation page naming what goes with the rule (its history, open alerts), then delete."""
    rule = _rule(request, rule_id)
    require_role(request, Role.MEMBER)
    if request.method == "POST":
        alerting.alert_rule_delete(rule=rule, actor=actor(request))
        messages.success(request, f"Alert rule “{rule.name}” deleted.")
        return redirect(_rules_url(rule.instance_id))
    history = rule.alerts.count()
    firing = rule.alerts.filter(status=AlertStatus.FIRING).count()
    losses = [
        f"no more alerts for “{rule.get_kind_display()}” above {rule.threshold:g} on instance {rule.instance.name}",
        f"its alert history: {history} alert(s)",
    ]
    if firing:
        losses.append(f"{firing} alert(s) firing now close without a “resolved” e-mail")
    if rule.is_default:
        losses.append("this is one of the instance's default rules; it is not created again")
    return page(request, "console/confirm_delete.html", {
        "section": "alerts", "form": forms.Form(), "kind": "alert rule", "name": rule.name, "losses": losses,
        "cancel_url": _rules_url(rule.instance_id),
        "crumbs": [(reverse("console:alerts"), "Alerts")],
    })


# --- contacts ---------------------------------------------------------------------------------


@org_view()
@require_http_methods(["GET", "POST"])
def contacts(request: HttpRequest) -> HttpResponse:
    """The organisation's alert contacts; admins add them."""
    organisation = request.organisation
    form = AlertContactForm(request.POST or None)
    if request.method == "POST":
        require_role(request, Role.ADMIN)
        if form.is_valid():
            try:
                contact = alerting.alert_contact_create(organisation=organisation, actor=actor(request),
                                                        **form.cleaned_data)
            except ApplicationError as exc:
                apply_error(form, exc)
            else:
                messages.success(request, f"{contact.email} now receives the organisation's alerts.")
                return redirect("console:alert-contacts")
    rows = scoped(AlertContact.objects.all(), organisation).order_by("email")
    own_recipients = scoped(AlertRule.objects.exclude(recipients=[]), organisation).count()
    return page(request, "console/alerting/contacts.html", {
        "section": "alerts", "rows": rows, "form": form, "can_manage": has_role(request.membership, Role.ADMIN),
        "own_recipients": own_recipients,
    }, status=400 if form.errors else 200)


def _contact(request: HttpRequest, contact_id: int) -> AlertContact:
    return scoped_get(AlertContact.objects.all(), request.organisation, pk=contact_id)


@org_view()
@require_http_methods(["GET", "POST"])
def contact_edit(request: HttpRequest, contact_id: int) -> HttpResponse:
    """Change a contact's address or name (admins and above, as ``PATCH /api/v1/alert-contacts/{id}/``)."""
    contact = _contact(request, contact_id)
    require_role(request, Role.ADMIN)
    form = AlertContactForm(request.POST or None, initial={"email": contact.email, "name": contact.name})
    if request.method == "POST" and form.is_valid():
        try:
            alerting.alert_contact_update(contact=contact, actor=actor(request), **form.cleaned_data)
        except ApplicationError as exc:
            apply_error(form, exc)
        else:
            messages.success(request, f"Alert contact {contact.email} saved.")
            return redirect("console:alert-contacts")
    return page(request, "console/alerting/form.html", {
        "section": "alerts", "form": form, "title": f"Edit alert contact {contact.email}", "submit": "Save contact",
        "cancel_url": reverse("console:alert-contacts"),
        "crumbs": [(reverse("console:alerts"), "Alerts"), (reverse("console:alert-contacts"), "Contacts")],
    }, status=400 if form.errors else 200)


def _contact_losses(contact: AlertContact) -> list[str]:
    """What deleting ``contact`` changes, in the words of the confirmation page."""
    losses = [f"{contact.email} stops receiving the alerts of every instance of the organisation"]
    remaining = AlertContact.objects.filter(organisation_id=contact.organisation_id).exclude(pk=contact.pk).count()
    if not remaining:
        losses.append("it is the last contact: alerts then go to the organisation's owners and admins")
    # In Python: a JSON "contains" lookup is not available on every database backend (SQLite).
    named = sum(contact.email in (recipients or []) for recipients in AlertRule.objects.filter(
        instance__organisation_id=contact.organisation_id).exclude(recipients=[]).values_list("recipients", flat=True))
    if named:
        losses.append(f"{named} rule(s) name this address as a recipient themselves and keep sending to it")
    return losses


@org_view()
@require_http_methods(["GET", "POST"])
def contact_delete(request: HttpRequest, contact_id: int) -> HttpResponse:
    """A confirmation page naming what changes when the contact goes, then delete (admins and above)."""
    contact = _contact(request, contact_id)
    require_role(request, Role.ADMIN)
    if request.method == "POST":
        alerting.alert_contact_delete(contact=contact, actor=actor(request))
        messages.success(request, f"{contact.email} no longer receives alerts.")
        return redirect("console:alert-contacts")
    context: dict[str, Any] = {
        "section": "alerts", "form": forms.Form(), "kind": "alert contact", "name": contact.email,
        "losses": _contact_losses(contact), "cancel_url": reverse("console:alert-contacts"),
        "crumbs": [(reverse("console:alerts"), "Alerts"), (reverse("console:alert-contacts"), "Contacts")],
    }
    return page(request, "console/confirm_delete.html", context)
