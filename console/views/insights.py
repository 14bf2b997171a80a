"""Usage, dashboards and consumer-group details: read-only pages over the metrics selectors."""
from __future__ import annotations

import datetime as dt
from datetime import timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from brokers.models.metrics import Resolution
from brokers.services import admin as admin_service
from brokers.services.metrics import instance_metrics_summary, latest_gauge_by, metric_series
from console.forms import ResetOffsetApplyForm, ResetOffsetForm
from console.render import page
from console.scoping import org_view, scoped_get
from console.usage import instances_usage, organisation_usage
from tenants.errors import ApplicationError
from tenants.models import ConsumerGroup, Instance

#: A page render waits at most this long for the broker node.
NODE_TIMEOUT_S = 3.0

CHARTS = [
    ("messages_in", "Messages in per minute"),
    ("messages_out", "Messages out per minute"),
    ("lag_messages", "Consumer lag (messages)"),
    ("throttled_send", "Throttled sends per minute"),
    ("storage_bytes", "Storage (bytes)"),
]


@org_view()
def usage(request: HttpRequest) -> HttpResponse:
    organisation = request.organisation
    return page(request, "console/insights/usage.html", {
        "section": "usage", "plan": organisation.plan, "org_meters": organisation_usage(organisation),
        "instances": instances_usage(organisation),
    })


def _instance(request: HttpRequest, instance_id: int) -> Instance:
    return scoped_get(Instance.objects.select_related("organisation__plan"), request.organisation, pk=instance_id)


@org_view()
def dashboard(request: HttpRequest, instance_id: int) -> HttpResponse:
    instance = _instance(request, instance_id)
    topics = list(instance.topics.order_by("name").values_list("name", flat=True))
    groups = list(instance.groups.order_by("name").values_list("name", flat=True))
    return page(request, "console/insights/dashboard.html", {
        "section": "instances", "instance": instance, "charts": CHARTS, "topics": topics, "groups": groups,
        "summary": instance_metrics_summary(instance=instance),
    })


@org_view()
def dashboard_summary(request: HttpRequest, instance_id: int) -> HttpResponse:
    """HTMX fragment: the headline figures, re-rendered every few seconds."""
    instance = _instance(request, instance_id)
    return page(request, "console/insights/_summary.html", {"instance": instance,
                                                            "summary": instance_metrics_summary(instance=instance)})


def _node(instance: Instance, op: str, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """Ask the instance's broker node over the admin channel; ``(None, why)`` when it cannot answer
    (not placed yet, down, timeout, refused), so the page falls back to the metrics."""
    try:
        return admin_service.node_request(instance, op, args, timeout=NODE_TIMEOUT_S), ""
    except ApplicationError as exc:
        return None, exc.message


@org_view()
def group_detail(request: HttpRequest, instance_id: int, group_id: int) -> HttpResponse:
    """Live status from the broker node (lag per queue, online clients, DLQ) when it answers, the
    metrics' per-topic figures otherwise; reset-offset preview as the node's dry run, or an
    estimate from the metrics."""
    instance = _instance(request, instance_id)
    group = scoped_get(ConsumerGroup.objects.all(), request.organisation, pk=group_id, instance=instance)
    now = timezone.now()
    status, status_problem = _node(instance, "group.status", {"group": group.name})
    per_topic: dict[str, dict[str, int]] = {}
    dlq = 0
    if status is None:
        for metric in ("lag_messages", "oldest_age_seconds"):
            for (grp, topic), value in latest_gauge_by(metric=metric, keys=("group", "topic"), now=now,
                                                       instance=instance).items():
                if grp == group.name and topic:
                    per_topic.setdefault(topic, {})[metric] = value
        dlq = latest_gauge_by(metric="dlq_messages", keys=("group",), now=now, instance=instance).get((group.name,), 0)
    topics = list(instance.topics.order_by("name").values_list("name", flat=True))
    form = ResetOffsetForm(request.GET or None, topics=topics)
    preview, apply_form = None, None
    if request.GET and form.is_valid():
        since = form.cleaned_data["timestamp"]
        if timezone.is_naive(since):
            since = timezone.make_aware(since, dt.timezone.utc)
        plan, plan_problem = _node(instance, "group.reset_offset", {
            "group": group.name, "topic": form.cleaned_data["topic"], "dry_run": True,
            "timestamp_ms": int(since.timestamp() * 1000)})
        if plan is not None:
            preview = {"source": "node", "since": since, "topic": form.cleaned_data["topic"], **plan}
            apply_form = ResetOffsetApplyForm(initial={"topic": form.cleaned_data["topic"],
                                                       "timestamp_ms": int(since.timestamp() * 1000)})
        else:
            resolution = Resolution.MINUTE if now - since <= timedelta(hours=24) else Resolution.HOUR
            points = metric_series(instance=instance, metric="messages_in", resolution=resolution, start=since,
                                   end=now, topic=form.cleaned_data["topic"])
            preview = {"source": "metrics", "why": plan_problem, "topic": form.cleaned_data["topic"], "since": since,
                       "messages": sum(v for _, v in points), "resolution": resolution}
    return page(request, "console/insights/group.html", {
        "section": "instances", "instance": instance, "group": group, "status": status,
        "status_problem": status_problem, "per_topic": sorted(per_topic.items()), "dlq": dlq, "form": form,
        "preview": preview, "apply_form": apply_form,
    })
