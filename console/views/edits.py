"""Editing an instance (description, quotas), a topic and a consumer group.

The services decide (``tenants.services.instance_update``, ``topic_update``, ``group_update``, the
same calls as ``PATCH /api/v1/instances|topics|groups/{id}/``) and audit; members and above edit,
as in the API. Objects are looked up scoped to the organisation first (another organisation's: 404).
"""
from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.forms.models import model_to_dict
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.defaultfilters import filesizeformat
from django.views.decorators.http import require_http_methods

from console.errors import apply_error
from console.forms import GroupEditForm, InstanceEditForm, TopicEditForm
from console.render import page
from console.scoping import actor, org_view, require_role, scoped_get
from tenants import services
from tenants.errors import ApplicationError, QuotaExceeded
from tenants.models import ConsumerGroup, Instance, Role, Topic

_SIZES = {"storage_bytes", "max_message_bytes", "org_storage_budget_bytes"}
_BUDGETS = {"org_send_tps_budget": "send TPS", "org_storage_budget_bytes": "storage"}


def _instance(request: HttpRequest, instance_id: int) -> Instance:
    return scoped_get(Instance.objects.select_related("organisation__plan"), request.organisation, pk=instance_id)


def _form_page(request: HttpRequest, instance: Instance, form: Any, *, title: str, submit: str,
               facts: list[tuple[str, str]]) -> HttpResponse:
    return page(request, "console/instances/form.html", {
        "section": "instances", "instance": instance, "form": form, "title": title, "submit": submit, "facts": facts,
    }, status=400 if form.errors else 200)


def _quota_message(exc: QuotaExceeded) -> str:
    """A refused quota in the units the form shows."""
    quota, limit = exc.details["quota"], exc.details["limit"]
    show = filesizeformat if quota in _SIZES else str
    if quota in _BUDGETS:
        left = limit - exc.details["current"]
        return (f"The organisation's {_BUDGETS[quota]} budget is {show(limit)}; the other instances already "
                f"use {show(exc.details['current'])}, which leaves {show(max(left, 0))} for this one.")
    return f"Your plan allows at most {show(limit)} here."


@org_view()
@require_http_methods(["GET", "POST"])
def instance_edit(request: HttpRequest, instance_id: int) -> HttpResponse:
    """Description and per-instance quotas: lower than the plan, never higher (an operator moves
    the organisation to another plan to raise them)."""
    instance = _instance(request, instance_id)
    require_role(request, Role.MEMBER)
    plan = instance.organisation.plan
    form = InstanceEditForm(request.POST or None, initial=InstanceEditForm.initial_for(instance), plan=plan)
    if request.method == "POST" and form.is_valid():
        try:
            services.instance_update(instance=instance, actor=actor(request), **form.service_fields(instance))
        except QuotaExceeded as exc:
            field = InstanceEditForm.ALIASES.get(exc.details["quota"], exc.details["quota"])
            form.add_error(field if field in form.fields else None, _quota_message(exc))
        except ApplicationError as exc:
            apply_error(form, exc, InstanceEditForm.ALIASES)
        else:
            messages.success(request, f"Instance “{instance.name}” saved; its broker nodes apply the new quotas.")
            return redirect("console:instance", instance.pk)
    return _form_page(request, instance, form, title=f"Edit instance {instance.name}", submit="Save instance", facts=[
        ("Name", instance.name), ("Namespace", instance.namespace),
        ("Plan", f"{plan.name} (an operator can move the organisation to a plan with higher limits)"),
    ])


@org_view()
@require_http_methods(["GET", "POST"])
def topic_edit(request: HttpRequest, instance_id: int, topic_id: int) -> HttpResponse:
    """Queues (add only), retention (up to the instance's) and description; the type is fixed."""
    instance = _instance(request, instance_id)
    topic = scoped_get(Topic.objects.all(), request.organisation, pk=topic_id, instance=instance)
    require_role(request, Role.MEMBER)
    # An unbound model instance for the form: validating a ModelForm writes into its instance, and
    # the service must see the topic as it was (its audit entry is the difference).
    form = TopicEditForm(request.POST or None, initial=model_to_dict(topic, fields=TopicEditForm.Meta.fields))
    form.fields["retention_hours"].help_text = f"At most the instance's retention ({instance.retention_hours} h)."
    if request.method == "POST" and form.is_valid():
        try:
            services.topic_update(topic=topic, actor=actor(request), **form.cleaned_data)
        except ApplicationError as exc:
            if isinstance(exc, QuotaExceeded):
                form.add_error("retention_hours", f"At most the instance's retention, {instance.retention_hours} h.")
            else:
                apply_error(form, exc)
        else:
            messages.success(request, f"Topic “{topic.name}” saved.")
            return redirect("console:instance", instance.pk)
    return _form_page(request, instance, form, title=f"Edit topic {topic.name}", submit="Save topic", facts=[
        ("Name", topic.name),
        ("Message type", f"{topic.get_message_type_display()} — fixed once created: producers and consumers rely "
                         "on it; create another topic for another type"),
        ("Queues now", str(topic.queue_count)),
    ])


@org_view()
@require_http_methods(["GET", "POST"])
def group_edit(request: HttpRequest, instance_id: int, group_id: int) -> HttpResponse:
    """Delivery mode, ordering, max delivery attempts and retry backoff; the name is fixed."""
    instance = _instance(request, instance_id)
    group = scoped_get(ConsumerGroup.objects.all(), request.organisation, pk=group_id, instance=instance)
    require_role(request, Role.MEMBER)
    form = GroupEditForm(request.POST or None, initial=model_to_dict(group, fields=GroupEditForm.Meta.fields))
    if request.method == "POST" and form.is_valid():
        try:
            services.group_update(group=group, actor=actor(request), **form.cleaned_data)
        except ApplicationError as exc:
            apply_error(form, exc)
        else:
            messages.success(request, f"Consumer group “{group.name}” saved.")
            return redirect("console:group", instance.pk, group.pk)
    return _form_page(request, instance, form, title=f"Edit consumer group {group.name}", submit="Save group", facts=[
        ("Name", f"{group.name} — fixed once created (consumers subscribe with it)"),
        ("Changes apply", "to deliveries after the broker node applies them; messages already waiting to be "
                          "retried keep their schedule"),
    ])
