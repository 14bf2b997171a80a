"""Messages, trace, offset reset and DLQ pages: scoping (another organisation: 404), roles as in the
REST API (members read, admins reset/resend, viewers neither), audit through the services, and a
clear answer when the broker node is away. The node is replaced by a recording fake here; the
real path through a node is in test_sdk_journey.py."""
from __future__ import annotations

from typing import Any

import pytest

from brokers.models import NodeStatus
from brokers.services import admin as admin_service
from tenants import services
from tenants.models import AuditLog, Instance
from tests.brokers.test_admin_api import _place
from tests.console.conftest import browser

pytestmark = pytest.mark.django_db

MSG = "0A1B2C3D4E5F"
DLQ_MSG = "0A1B2C3D4E60"
NOW_MS = 1_790_000_000_000


def _message(msg_id: str = MSG, topic: str = "orders", **extra: Any) -> dict[str, Any]:
    return {"msg_id": msg_id, "topic": topic, "queue_id": 1, "queue_offset": 7, "tag": "created", "keys": ["order-3"],
            "properties": {"region": "eu"}, "system_properties": {}, "body_size": 7, "body_text": "order 3",
            "body_truncated": False, "born_timestamp_ms": NOW_MS - 5, "store_timestamp_ms": NOW_MS,
            "born_host": "10.0.0.9:5000", "reconsume_times": 0, "flags": 0, **extra}


class FakeNode:
    """Answers like brokers/node/admin/service.py and records every request."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, instance: Instance, op: str, args: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        self.calls.append((op, dict(args)))
        if op == "message.get":
            if args["msg_id"] == DLQ_MSG:
                return {"message": _message(DLQ_MSG, "%DLQ%billing", reconsume_times=2, system_properties={
                    "__RETRY_TOPIC": f"{instance.namespace}%orders", "__ORIGIN_MSG_ID": MSG})}
            return {"message": _message(args["msg_id"])}
        if op == "message.by_key":
            return {"messages": [_message()]}
        if op == "message.by_time":
            return {"messages": [_message()], "next_cursor": "1:8" if "cursor" not in args else None}
        if op == "message.trace":
            return {"message": _message(), "sent": {"born_timestamp_ms": NOW_MS - 5, "born_host": "10.0.0.9:5000",
                                                    "producer_group": "", "producer_client_id": "prod-1"},
                    "stored": {"store_timestamp_ms": NOW_MS, "topic": "orders", "queue_id": 1, "queue_offset": 7},
                    "deliveries": [{"group": "billing", "consumer": None, "committed_offset": 8, "attempts": 2,
                                    "clients": ["cons-1"], "status": "acked", "acked_by": "cons-1", "retried": True,
                                    "events": [
                                        {"event": "delivered", "group": "x%billing", "client_id": "cons-1",
                                         "attempt": 1, "time_ms": NOW_MS + 10},
                                        {"event": "delivered", "group": "x%billing", "client_id": "cons-1",
                                         "attempt": 2, "time_ms": NOW_MS + 20},
                                        {"event": "acked", "group": "x%billing", "client_id": "cons-1",
                                         "attempt": 2, "time_ms": NOW_MS + 30}]}]}
        if op == "group.reset_offset":
            return {"group": args["group"], "timestamp_ms": args["timestamp_ms"], "dry_run": args["dry_run"],
                    "queues": [{"topic": "orders", "queue_id": 0, "consumer": None, "current_offset": 9,
                                "new_offset": 4, "skipped": 0, "replayed": 5}], "skipped": 0, "replayed": 5}
        if op == "group.status":
            return {"group": args["group"], "lag": 0, "topics": [], "clients": [], "dlq": {"messages": 1}}
        if op == "group.dlq":
            row = _message(DLQ_MSG, "%DLQ%billing")
            row["origin"] = {"topic": "orders", "msg_id": MSG, "queue_id": "1", "delivery_attempts": 2}
            return {"group": args["group"], "messages": [row], "total": 1, "next_cursor": None}
        if op == "group.dlq_resend":
            return {"group": args["group"], "dlq_msg_id": args["msg_id"], "topic": "orders", "queue_id": 1,
                    "msg_id": "FFEE", "origin_msg_id": MSG}
        raise AssertionError(op)

    def ops(self) -> list[str]:
        return [op for op, _ in self.calls]


@pytest.fixture
def instance(tenant: Any) -> Instance:
    instance = services.instance_create(organisation=tenant.organisation, name="prod", actor=services.SYSTEM)
    services.topic_create(instance=instance, name="orders", actor=services.SYSTEM)
    services.group_create(instance=instance, name="billing", actor=services.SYSTEM)
    return instance


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> FakeNode:
    fake = FakeNode()
    monkeypatch.setattr(admin_service, "node_request", fake)
    return fake


def test_messages_by_key_id_and_time_for_members_not_viewers(tenant: Any, instance: Instance, node: FakeNode) -> None:
    base = f"/instances/{instance.pk}/messages/"
    assert browser(tenant.users["viewer"]).get(base).status_code == 403  # the API's rule: member+
    member = browser(tenant.users["member"])
    body = member.get(base, {"topic": "orders", "key": "order-3"}).content.decode()
    assert node.calls[-1] == ("message.by_key", {"topic": "orders", "key": "order-3", "limit": 100})
    assert f'href="/instances/{instance.pk}/messages/{MSG}/"' in body and "order 3" in body
    assert "1 message(s)" in body

    member.get(base, {"msg_id": MSG})
    assert node.calls[-1] == ("message.get", {"msg_id": MSG})

    page1 = member.get(base, {"topic": "orders", "since": "2026-09-21T12:00", "until": "2026-09-21T13:00"})
    op, args = node.calls[-1]
    assert op == "message.by_time" and args["from_ms"] == 1_789_992_000_000 and args["to_ms"] == 1_789_995_600_000
    assert "cursor=1%3A8" in page1.content.decode()  # the node's cursor drives "Next page"
    member.get(base, {"topic": "orders", "since": "2026-09-21T12:00", "cursor": "1:8"})
    assert node.calls[-1][1]["cursor"] == "1:8"

    # A topic of another instance is not a choice, and nothing reaches the node for a bad query.
    calls = len(node.calls)
    refused = member.get(base, {"topic": "elsewhere", "key": "k"}).content.decode()
    assert "Select a valid choice" in refused
    assert "give a key or a" in member.get(base, {"topic": "orders"}).content.decode()
    assert len(node.calls) == calls


def test_message_trace_page_is_a_timeline(tenant: Any, instance: Instance, node: FakeNode) -> None:
    response = browser(tenant.users["member"]).get(f"/instances/{instance.pk}/messages/{MSG}/")
    body = response.content.decode()
    assert response.status_code == 200 and node.calls == [("message.trace", {"msg_id": MSG})]
    steps = [label for label in ("Sent", "Stored", "Delivered", "Retried (attempt 2)", "Acked")]
    positions = [body.index(f'">{label}</span>') for label in steps]
    assert positions == sorted(positions)  # in time order
    assert "acknowledged</span> by <span class=\"mono\">cons-1</span>" in body and "2 (retried)" in body
    assert "2026-09-21 14:13:20.010 UTC" in body  # first delivery, to the millisecond


def test_other_organisation_gets_404_everywhere(tenant: Any, other_tenant: Any, instance: Instance,
                                                node: FakeNode) -> None:
    group = instance.groups.get()
    stranger = browser(other_tenant.users["owner"])
    for url in (f"/instances/{instance.pk}/messages/?msg_id={MSG}", f"/instances/{instance.pk}/messages/{MSG}/",
                f"/instances/{instance.pk}/groups/{group.pk}/dlq/",
                f"/instances/{instance.pk}/groups/{group.pk}/dlq/{DLQ_MSG}/resend/"):
        assert stranger.get(url).status_code == 404, url
    for url, data in ((f"/instances/{instance.pk}/groups/{group.pk}/reset-offset/",
                       {"topic": "orders", "timestamp_ms": 0, "confirm": "on"}),
                      (f"/instances/{instance.pk}/groups/{group.pk}/dlq/{DLQ_MSG}/resend/", {})):
        assert stranger.post(url, data).status_code == 404, url
    assert node.calls == [] and not AuditLog.objects.filter(action__in=["reset_offset", "dlq_resend"]).exists()


def test_reset_offset_preview_then_apply_is_audited_for_admins_only(tenant: Any, instance: Instance,
                                                                   node: FakeNode) -> None:
    group = instance.groups.get()
    url = f"/instances/{instance.pk}/groups/{group.pk}/"
    query = {"topic": "orders", "timestamp": "2026-09-21T12:00"}
    member_view = browser(tenant.users["member"]).get(url, query).content.decode()
    assert "<strong>5</strong> message(s) replayed" in member_view and "Apply reset" not in member_view
    assert "needs the admin or owner role" in member_view

    admin = browser(tenant.users["admin"])
    preview = admin.get(url, query).content.decode()
    assert "<strong>5</strong> message(s) are delivered again and <strong>0</strong> skipped" in preview
    assert 'value="1789992000000"' in preview and "Apply reset" in preview
    assert ("group.reset_offset", {"group": "billing", "topic": "orders", "dry_run": True,
                                   "timestamp_ms": 1_789_992_000_000}) in node.calls
    assert not AuditLog.objects.filter(action="reset_offset").exists()  # a preview changes nothing

    apply_url = f"/instances/{instance.pk}/groups/{group.pk}/reset-offset/"
    form = {"topic": "orders", "timestamp_ms": "1789992000000", "confirm": "on"}
    for role in ("viewer", "member"):
        assert browser(tenant.users[role]).post(apply_url, form).status_code == 403
    unconfirmed = admin.post(apply_url, {**form, "confirm": ""}, follow=True)
    assert "Tick the confirmation" in unconfirmed.content.decode()
    assert not any(op == "group.reset_offset" and not a["dry_run"] for op, a in node.calls)

    done = admin.post(apply_url, form, follow=True)
    assert "5 message(s) will be delivered again, 0 skipped" in done.content.decode()
    assert node.calls[-2] == ("group.reset_offset", {"group": "billing", "timestamp_ms": 1_789_992_000_000,
                                                     "dry_run": False, "topic": "orders"})
    entry = AuditLog.objects.get(action="reset_offset")
    assert entry.actor == tenant.users["admin"] and entry.object_id == str(instance.pk)
    assert entry.after == {"group": "billing", "timestamp_ms": 1_789_992_000_000, "topic": "orders",
                           "skipped": 0, "replayed": 5}
    # A topic outside the instance is refused by the service before the node is asked.
    calls = len(node.calls)
    admin.post(apply_url, {**form, "topic": "elsewhere"})
    assert len(node.calls) == calls and AuditLog.objects.filter(action="reset_offset").count() == 1


def test_dlq_list_and_resend_with_confirmation(tenant: Any, instance: Instance, node: FakeNode) -> None:
    group = instance.groups.get()
    dlq_url = f"/instances/{instance.pk}/groups/{group.pk}/dlq/"
    resend_url = f"{dlq_url}{DLQ_MSG}/resend/"
    assert browser(tenant.users["viewer"]).get(dlq_url).status_code == 403
    member_list = browser(tenant.users["member"]).get(dlq_url).content.decode()
    assert "1 dead letter(s)" in member_list and DLQ_MSG in member_list and resend_url not in member_list
    assert browser(tenant.users["member"]).post(resend_url).status_code == 403

    owner = browser(tenant.users["owner"])
    assert resend_url in owner.get(dlq_url).content.decode()
    confirm = owner.get(resend_url).content.decode()
    assert "replayed to every consumer group subscribed to" in confirm and "Resend to orders" in confirm
    assert "delivered 2 time(s)" in confirm and not AuditLog.objects.filter(action="dlq_resend").exists()

    done = owner.post(resend_url, follow=True).content.decode()
    assert "Resent to topic orders as message FFEE" in done
    assert ("group.dlq_resend", {"group": "billing", "msg_id": DLQ_MSG}) in node.calls
    entry = AuditLog.objects.get(action="dlq_resend")
    assert entry.actor == tenant.users["owner"]
    assert entry.after == {"group": "billing", "dlq_msg_id": DLQ_MSG, "topic": "orders", "msg_id": "FFEE"}

    # Only a message of this group's DLQ can be resent from here.
    assert owner.get(f"{dlq_url}{MSG}/resend/").status_code == 404


def test_node_away_is_said_plainly(tenant: Any, instance: Instance) -> None:
    group = instance.groups.get()
    member = browser(tenant.users["member"])
    never_placed = member.get(f"/instances/{instance.pk}/messages/{MSG}/")
    assert never_placed.status_code == 409 and "on a broker node yet" in never_placed.content.decode()

    _place(instance, status=NodeStatus.DOWN)
    for url in (f"/instances/{instance.pk}/messages/{MSG}/", f"/instances/{instance.pk}/groups/{group.pk}/dlq/",
                f"/instances/{instance.pk}/messages/?topic=orders&key=k"):
        response = member.get(url)
        body = response.content.decode()
        assert response.status_code == 503, url
        assert "The broker node serving this instance is unavailable right now" in body and 'role="alert"' in body
    refused = browser(tenant.users["admin"]).post(f"/instances/{instance.pk}/groups/{group.pk}/reset-offset/",
                                                  {"topic": "orders", "timestamp_ms": "0", "confirm": "on"}, follow=True)
    assert "The reset was not applied." in refused.content.decode() and "unavailable right now" in refused.content.decode()
    assert not AuditLog.objects.filter(action="reset_offset").exists()
