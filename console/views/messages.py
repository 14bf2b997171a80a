"""Messages, traces, offset resets and dead letters: pages over ``brokers.services.admin``, which
asks the instance's broker node over the admin channel (docs/fleet.md, "Admin channel").

Roles as in the REST API (``brokers/api/admin.py``): members and up query messages, traces and the
DLQ; admins and owners reset offsets and resend, through the services that also write the audit
entry. Another organisation's instance or group is a 404 before any role check (the role is
checked after the scoped lookup, so a viewer of one organisation gets 404, not 403, for another's).
"""
from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages as flash
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from brokers.services import admin as admin_service
from console.forms import MessageQueryForm, ResetOffsetApplyForm
from console.render import page
from console.scoping import actor, org_view, require_role, scoped_get
from tenants.errors import ApplicationError, ErrorCode
from tenants.models import ConsumerGroup, Instance, Role

#: What each delivery status means, in the words the trace page uses.
STATUS_TEXT = {
    "acked": "acknowledged",
    "in_flight": "delivered, waiting for the consumer's ack",
    "awaiting_retry": "not acked in time, waiting for redelivery",
    "dead_lettered": "moved to the dead-letter queue",
    "not_delivered": "not delivered yet",
}


def node_problem(exc: ApplicationError) -> str:
    """A sentence for the page when the broker node cannot answer."""
    if exc.code == "node_unavailable":
        return (f"The broker node serving this instance is unavailable right now ({exc.message}) "
                "Nothing was changed; try again once the node is back up.")
    if exc.code == "node_timeout":
        return (f"The broker node did not answer in time ({exc.message}) "
                "It may be overloaded or restarting; nothing is known to have changed. Try again.")
    return exc.message


def _when(ms: Any) -> dt.datetime | None:
    if not isinstance(ms, int) or ms <= 0:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)


def _ms(value: dt.datetime) -> int:
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.timezone.utc)
    return int(value.timestamp() * 1000)


def _instance(request: HttpRequest, instance_id: int) -> Instance:
    return scoped_get(Instance.objects.all(), request.organisation, pk=instance_id)


def _group(request: HttpRequest, instance: Instance, group_id: int) -> ConsumerGroup:
    return scoped_get(ConsumerGroup.objects.all(), request.organisation, pk=group_id, instance=instance)


def _with_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "stored_at": _when(r.get("store_timestamp_ms")), "born_at": _when(r.get("born_timestamp_ms"))}
            for r in rows]


# ---------------------------------------------------------------------- messages
@org_view()
def message_search(request: HttpRequest, instance_id: int) -> HttpResponse:
    """By id, by topic + key, or by topic + store time (paged with the node's cursor)."""
    instance = _instance(request, instance_id)
    require_role(request, Role.MEMBER)
    topics = list(instance.topics.order_by("name").values_list("name", flat=True))
    form = MessageQueryForm(request.GET or None, topics=topics)
    results: list[dict[str, Any]] | None = None
    next_query, problem, status = "", "", 200
    if request.GET and form.is_valid():
        q = form.cleaned_data
        try:
            if q["mode"] == "id":
                try:
                    results = [admin_service.node_request(instance, "message.get", {"msg_id": q["msg_id"]})["message"]]
                except ApplicationError as exc:
                    if exc.code != ErrorCode.NOT_FOUND:
                        raise
                    results = []
            elif q["mode"] == "key":
                results = admin_service.node_request(instance, "message.by_key", {
                    "topic": q["topic"], "key": q["key"], "limit": 100})["messages"]
            else:
                args: dict[str, Any] = {"topic": q["topic"], "from_ms": _ms(q["since"]), "limit": 25}
                if q.get("until"):
                    args["to_ms"] = _ms(q["until"])
                if q.get("cursor"):
                    args["cursor"] = q["cursor"]
                answer = admin_service.node_request(instance, "message.by_time", args)
                results = answer["messages"]
                if answer.get("next_cursor"):
                    params = request.GET.copy()
                    params["cursor"] = answer["next_cursor"]
                    next_query = params.urlencode()
        except ApplicationError as exc:
            problem, status = node_problem(exc), exc.status
    return page(request, "console/messages/search.html", {
        "section": "instances", "instance": instance, "form": form, "topics": topics,
        "results": None if results is None else _with_times(results), "next_query": next_query,
        "problem": problem, "paged": bool(request.GET.get("cursor")),
    }, status=status)


def _timeline(trace: dict[str, Any]) -> list[dict[str, Any]]:
    """Sent, stored, then every delivery event the node remembers, in time order."""
    sent, stored = trace.get("sent") or {}, trace.get("stored") or {}
    producer = " ".join(x for x in (sent.get("producer_group") and f"group {sent['producer_group']}",
                                    sent.get("producer_client_id") and f"client {sent['producer_client_id']}") if x)
    steps: list[dict[str, Any]] = [
        {"kind": "sent", "label": "Sent", "at": _when(sent.get("born_timestamp_ms")),
         "detail": " · ".join(x for x in (producer and f"by {producer}", sent.get("born_host") and f"from {sent['born_host']}") if x)},
        {"kind": "stored", "label": "Stored", "at": _when(stored.get("store_timestamp_ms")),
         "detail": f"topic {stored.get('topic')}, queue {stored.get('queue_id')}, offset {stored.get('queue_offset')}"},
    ]
    events = []
    for d in trace.get("deliveries") or []:
        for e in d.get("events") or []:
            client = e.get("client_id") or "—"
            if e.get("event") == "delivered":
                retry = (e.get("attempt") or 1) > 1
                label = f"Retried (attempt {e['attempt']})" if retry else "Delivered"
                kind = "retried" if retry else "delivered"
            elif e.get("event") == "acked":
                label, kind = "Acked", "acked"
            elif e.get("event") == "dead_lettered":
                label, kind = "Moved to the DLQ", "dlq"
            else:
                label, kind = str(e.get("event")), "other"
            events.append({"kind": kind, "label": label, "at": _when(e.get("time_ms")), "ms": e.get("time_ms") or 0,
                           "detail": f"group {d.get('group')} · client {client}"})
        if d.get("status") == "dead_lettered" and not any(e.get("event") == "dead_lettered" for e in d.get("events") or []):
            events.append({"kind": "dlq", "label": "Moved to the DLQ", "at": None, "ms": 2**62,
                           "detail": f"group {d.get('group')} · copy {(d.get('dlq') or {}).get('msg_id', '')}"})
    steps += sorted(events, key=lambda e: e["ms"])
    return steps


@org_view()
def message_detail(request: HttpRequest, instance_id: int, msg_id: str) -> HttpResponse:
    """The message (properties, body preview) and its trace as a timeline, per group status."""
    instance = _instance(request, instance_id)
    require_role(request, Role.MEMBER)
    try:
        trace = admin_service.node_request(instance, "message.trace", {"msg_id": msg_id})
    except ApplicationError as exc:
        return page(request, "console/messages/detail.html", {
            "section": "instances", "instance": instance, "msg_id": msg_id, "problem": node_problem(exc),
            "not_found": exc.code == ErrorCode.NOT_FOUND}, status=exc.status)
    groups = {g.name: g.pk for g in instance.groups.all()}
    deliveries = [{**d, "status_text": STATUS_TEXT.get(d.get("status", ""), d.get("status")),
                   "group_id": groups.get(d.get("group")), "acked_at": _when(d.get("acked_at_ms"))}
                  for d in trace.get("deliveries") or []]
    message = _with_times([trace["message"]])[0]
    return page(request, "console/messages/detail.html", {
        "section": "instances", "instance": instance, "msg_id": msg_id, "message": message,
        "timeline": _timeline(trace), "deliveries": deliveries,
    })


# ---------------------------------------------------------------------- offset reset
@require_POST
@org_view()
def group_reset_offset(request: HttpRequest, instance_id: int, group_id: int) -> HttpResponse:
    """Apply the reset previewed on the group page (the service audits it)."""
    instance = _instance(request, instance_id)
    group = _group(request, instance, group_id)
    require_role(request, Role.ADMIN)
    form = ResetOffsetApplyForm(request.POST)
    back = reverse("console:group", args=[instance.pk, group.pk])
    if not form.is_valid():
        flash.error(request, "Tick the confirmation to apply the reset; nothing was changed.")
        return redirect(back)
    data = form.cleaned_data
    try:
        result = admin_service.group_reset_offset(actor=actor(request), instance=instance, group=group,
                                                  timestamp_ms=data["timestamp_ms"], dry_run=False, topic=data["topic"])
    except ApplicationError as exc:
        flash.error(request, f"The reset was not applied. {node_problem(exc)}")
        return redirect(back)
    since = _when(data["timestamp_ms"]) or dt.datetime.fromtimestamp(0, tz=dt.timezone.utc)
    flash.success(request, f"Offset reset applied on {data['topic']} from {since:%Y-%m-%d %H:%M} UTC: "
                           f"{result.get('replayed', 0)} message(s) will be delivered again, "
                           f"{result.get('skipped', 0)} skipped.")
    return redirect(back)


# ---------------------------------------------------------------------- dead letters
@org_view()
def group_dlq(request: HttpRequest, instance_id: int, group_id: int) -> HttpResponse:
    """The group's dead-letter queue, oldest first, 25 per page."""
    instance = _instance(request, instance_id)
    group = _group(request, instance, group_id)
    require_role(request, Role.MEMBER)
    cursor = request.GET.get("cursor", "")
    args: dict[str, Any] = {"group": group.name, "limit": 25}
    if cursor.isdigit():
        args["cursor"] = int(cursor)
    try:
        answer = admin_service.node_request(instance, "group.dlq", args)
    except ApplicationError as exc:
        return page(request, "console/messages/dlq.html", {
            "section": "instances", "instance": instance, "group": group, "problem": node_problem(exc)},
            status=exc.status)
    return page(request, "console/messages/dlq.html", {
        "section": "instances", "instance": instance, "group": group, "rows": _with_times(answer["messages"]),
        "total": answer.get("total", 0), "next_query": urlencode({"cursor": answer["next_cursor"]})
        if answer.get("next_cursor") is not None else "", "paged": bool(cursor),
    })


@org_view()
def group_dlq_resend(request: HttpRequest, instance_id: int, group_id: int, msg_id: str) -> HttpResponse:
    """GET: what a resend does, for this message; POST: resend it (the service audits it)."""
    instance = _instance(request, instance_id)
    group = _group(request, instance, group_id)
    require_role(request, Role.ADMIN)
    back = reverse("console:group-dlq", args=[instance.pk, group.pk])
    if request.method == "POST":
        try:
            result = admin_service.dlq_resend(actor=actor(request), instance=instance, group=group, msg_id=msg_id)
        except ApplicationError as exc:
            flash.error(request, f"The message was not resent. {node_problem(exc)}")
            return redirect(back)
        flash.success(request, f"Resent to topic {result.get('topic')} as message {result.get('msg_id')}; "
                               "the dead-letter entry stays.")
        return redirect(back)
    try:
        message = admin_service.node_request(instance, "message.get", {"msg_id": msg_id})["message"]
    except ApplicationError as exc:
        return page(request, "console/messages/resend.html", {
            "section": "instances", "instance": instance, "group": group, "msg_id": msg_id,
            "problem": node_problem(exc)}, status=exc.status)
    if message.get("topic") != f"%DLQ%{group.name}":
        return page(request, "console/messages/resend.html", {
            "section": "instances", "instance": instance, "group": group, "msg_id": msg_id,
            "problem": f"Message {msg_id} is not in the dead-letter queue of {group.name}."}, status=404)
    props = message.get("system_properties") or {}  # the node's DLQ bookkeeping (brokers/node/store/model.py)
    retry_topic = str(props.get("__RETRY_TOPIC", ""))
    origin = {"topic": retry_topic.split("%", 1)[1] if "%" in retry_topic else retry_topic,
              "msg_id": props.get("__ORIGIN_MSG_ID", ""), "attempts": message.get("reconsume_times")}
    return page(request, "console/messages/resend.html", {
        "section": "instances", "instance": instance, "group": group, "msg_id": msg_id,
        "message": _with_times([message])[0], "origin": origin,
    })
