"""Instances, topics and consumer groups."""
from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST

from console.errors import apply_error
from console.forms import ConfirmNameForm, GroupForm, InstanceForm, TopicForm
from console.quickstart import samples
from console.render import page
from console.scoping import actor, org_view, require_role, scoped, scoped_get
from tenants import services
from tenants.errors import ApplicationError
from tenants.models import ConsumerGroup, Instance, InstanceStatus, Role, Topic


def _instance(request: HttpRequest, instance_id: int) -> Instance:
    return scoped_get(Instance.objects.select_related("organisation__plan"), request.organisation, pk=instance_id)


@org_view()
def instance_list(request: HttpRequest) -> HttpResponse:
    rows = scoped(Instance.objects.all(), request.organisation).order_by("name")
    return page(request, "console/instances/list.html", {"section": "instances", "rows": rows})


@org_view(Role.MEMBER)
@require_http_methods(["GET", "POST"])
def instance_new(request: HttpRequest) -> HttpResponse:
    form = InstanceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            instance = services.instance_create(organisation=request.organisation, actor=actor(request), **form.cleaned_data)
        except ApplicationError as exc:
            apply_error(form, exc)
        else:
            messages.success(request, f"Instance “{instance.name}” is being provisioned.")
            return redirect("console:instance", instance.pk)
    plan = request.organisation.plan
    return page(request, "console/instances/new.html", {"section": "instances", "form": form, "plan": plan},
                status=400 if form.errors else 200)


@org_view()
def instance_detail(request: HttpRequest, instance_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    topics = list(instance.topics.order_by("name"))
    return page(request, "console/instances/detail.html", {
        "section": "instances", "instance": instance, "topics": topics,
        "groups": instance.groups.order_by("name"),
        "samples": samples(endpoint=instance.endpoint, namespace=instance.namespace,
                           topic=topics[0].name if topics else "YOUR_TOPIC"),
    })


@org_view()
def instance_status(request: HttpRequest, instance_id: int) -> HttpResponse:
    """HTMX fragment polled while an instance is provisioning; it stops polling once settled."""
    instance = _instance(request, instance_id)
    response = page(request, "console/instances/_status.html", {"instance": instance})
    if instance.status != InstanceStatus.PROVISIONING and request.GET.get("was") == InstanceStatus.PROVISIONING:
        response["HX-Refresh"] = "true"  # endpoint and quick start changed: reload the whole page
    return response


@org_view()
@require_http_methods(["GET", "POST"])
def instance_delete(request: HttpRequest, instance_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    require_role(request, Role.MEMBER)
    form = ConfirmNameForm(request.POST or None, expected=instance.name)
    if request.method == "POST" and form.is_valid():
        services.instance_delete(instance=instance, actor=actor(request))
        messages.success(request, f"Instance “{instance.name}” is being deleted.")
        return redirect("console:instances")
    return page(request, "console/confirm_delete.html", {
        "section": "instances", "form": form, "kind": "instance", "name": instance.name, "instance": instance,
        "losses": [
            f"{instance.topics.count()} topic(s) and every message stored in them",
            f"{instance.groups.count()} consumer group(s) and their consumption progress",
            f"{instance.credentials.count()} credential(s): applications using them are disconnected",
            f"the endpoint {instance.endpoint or '(not assigned yet)'}; its namespace {instance.namespace} is never reused",
        ],
    }, status=400 if form.errors else 200)


# --- topics ------------------------------------------------------------------------------------


@org_view()
@require_http_methods(["GET", "POST"])
def topic_new(request: HttpRequest, instance_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    require_role(request, Role.MEMBER)
    form = TopicForm(request.POST or None, initial={"queue_count": 8})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            topic = services.topic_create(instance=instance, actor=actor(request), name=data["name"],
                                          message_type=data["message_type"], queue_count=data["queue_count"],
                                          retention_hours=data.get("retention_hours"), description=data["description"])
        except ApplicationError as exc:
            apply_error(form, exc)
        else:
            messages.success(request, f"Topic “{topic.name}” created.")
            return redirect("console:instance", instance.pk)
    return page(request, "console/instances/form.html", {
        "section": "instances", "instance": instance, "form": form, "title": "New topic", "submit": "Create topic",
    }, status=400 if form.errors else 200)


@org_view()
@require_http_methods(["GET", "POST"])
def topic_delete(request: HttpRequest, instance_id: int, topic_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    topic = scoped_get(Topic.objects.all(), request.organisation, pk=topic_id, instance=instance)
    require_role(request, Role.MEMBER)
    form = ConfirmNameForm(request.POST or None, expected=topic.name)
    if request.method == "POST" and form.is_valid():
        try:
            services.topic_delete(topic=topic, actor=actor(request))
        except ApplicationError as exc:
            apply_error(form, exc)
        else:
            messages.success(request, f"Topic “{topic.name}” deleted.")
            return redirect("console:instance", instance.pk)
    return page(request, "console/confirm_delete.html", {
        "section": "instances", "form": form, "kind": "topic", "name": topic.name, "instance": instance,
        "losses": [f"every message stored in its {topic.queue_count} queue(s) ({topic.get_message_type_display()} topic)",
                   "producers sending to it get “topic not found”; consumer groups lose their progress on it"],
    }, status=400 if form.errors else 200)


# --- consumer groups ---------------------------------------------------------------------------


@org_view()
@require_http_methods(["GET", "POST"])
def group_new(request: HttpRequest, instance_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    require_role(request, Role.MEMBER)
    form = GroupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            group = services.group_create(instance=instance, actor=actor(request), **form.cleaned_data)
        except ApplicationError as exc:
            apply_error(form, exc)
        else:
            messages.success(request, f"Consumer group “{group.name}” created.")
            return redirect("console:instance", instance.pk)
    return page(request, "console/instances/form.html", {
        "section": "instances", "instance": instance, "form": form, "title": "New consumer group",
        "submit": "Create group",
    }, status=400 if form.errors else 200)


@org_view()
@require_http_methods(["GET", "POST"])
def group_delete(request: HttpRequest, instance_id: int, group_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    group = scoped_get(ConsumerGroup.objects.all(), request.organisation, pk=group_id, instance=instance)
    require_role(request, Role.MEMBER)
    form = ConfirmNameForm(request.POST or None, expected=group.name)
    if request.method == "POST" and form.is_valid():
        try:
            services.group_delete(group=group, actor=actor(request))
        except ApplicationError as exc:
            apply_error(form, exc)
        else:
            messages.success(request, f"Consumer group “{group.name}” deleted.")
            return redirect("console:instance", instance.pk)
    return page(request, "console/confirm_delete.html", {
        "section": "instances", "form": form, "kind": "consumer group", "name": group.name, "instance": instance,
        "losses": ["its consumption progress (offsets) on every topic", "retry and dead-letter messages of the group",
                   "consumers using it are refused until it is created again"],
    }, status=400 if form.errors else 200)

