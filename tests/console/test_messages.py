"""Messages, trace, offset reset and DLQ pages against a real broker node: daphne serves the agents'
websocket (sharing the test database and the Redis channel layer), the fleet's provisioning task
starts a node process, the official RocketMQ SDK produces and consumes, and the pages (Django's
test client) ask the node over the admin channel. Checked: paging by store time with the node's
cursor, the trace as a timeline, roles as in the REST API (members read, admins reset and
resend, viewers neither), audit entries through the services, and another organisation's URLs
answering 404 (for every role, before the role check). The node-away answers need no node.

Nothing here is replaced: the node, the channel layer and the SDK are the real ones.
"""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from brokers.models import BrokerNode, NodeStatus
from tenants import services
from tenants.models import AuditLog, Instance
from tests.brokers.conftest import node_root, stop_nodes  # noqa: F401 - fixtures of control_plane
from tests.brokers.test_admin_api import _place
from tests.brokers.test_end_to_end import Daphne, _converged, control_plane  # noqa: F401 - fixture
from tests.conftest import create_instance
from tests.console.conftest import browser
from tests.support import needs_shared_services, receive_until, wait_until

REAL_NODE = needs_shared_services

SENT = 27  # more than one page of the by-time query (25 per page)


def _text(response: Any) -> str:
    return html.unescape(response.content.decode())


def _setup(tenant: Any) -> tuple[Instance, dict[str, Any]]:
    """Through the REST API, as a tenant would: instance (placed on a node), topic, a group that
    dead-letters after two deliveries, a credential allowed to publish and subscribe."""
    c = tenant.owner
    instance = Instance.objects.select_related("placement__cluster").get(pk=create_instance(c, "prod")["id"])
    assert instance.status == "ready", instance.status_message
    assert c.post("/api/v1/topics/", {"instance": instance.pk, "name": "orders"}, format="json").status_code == 201
    r = c.post("/api/v1/groups/", {"instance": instance.pk, "name": "billing", "max_delivery_attempts": 2},
               format="json")
    assert r.status_code == 201, r.content
    credential = c.post("/api/v1/credentials/", {"instance": instance.pk}, format="json").json()
    for resource, actions in (("topic", ["pub", "sub"]), ("group", ["sub"])):
        r = c.post("/api/v1/acl-rules/", {"credential": credential["id"], "resource_type": resource, "pattern": "*",
                                          "actions": actions}, format="json")
        assert r.status_code == 201, r.content
    node = BrokerNode.objects.get(cluster=instance.placement.cluster)
    wait_until(lambda: _converged(node.pk, instance.namespace, {"orders"}, credential["access_key"]), 30,
               "the node to apply topic, credential and ACL")
    return instance, credential


@REAL_NODE
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_message_pages_against_a_real_node(tenant: Any, other_tenant: Any, settings: Any,
                                           control_plane: Daphne) -> None:  # noqa: F811
    from rocketmq import ClientConfiguration, Credentials, FilterExpression, Message, Producer, SimpleConsumer

    settings.MQ_ADMIN_TIMEOUT_S = 20  # a loaded machine; no timing is asserted
    instance, credential = _setup(tenant)
    group = instance.groups.get()
    cfg = ClientConfiguration(instance.endpoint, Credentials(credential["access_key"], credential["secret_key"]),
                              namespace=instance.namespace, request_timeout=10)
    producer = Producer(cfg, ("orders",))
    producer.startup()
    consumer = SimpleConsumer(cfg, "billing", {"orders": FilterExpression()}, await_duration=3)
    consumer.startup()
    try:
        def send(body: bytes, key: str) -> str:
            message = Message()
            message.topic, message.body, message.tag, message.keys = "orders", body, "created", key
            return producer.send(message).message_id

        since = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=1)
        ids = [send(f"order {n}".encode(), f"order-{n}") for n in range(SENT)]
        receive_until(consumer, {f"order {n}".encode() for n in range(SENT)})

        base = f"/instances/{instance.pk}/messages/"
        member, viewer = browser(tenant.users["member"]), browser(tenant.users["viewer"])
        assert viewer.get(base).status_code == 403  # the API's rule: member and above

        # By key (the node indexes keys in the background: ask until it has it).
        def by_key() -> str:
            body = _text(member.get(base, {"topic": "orders", "key": "order-3"}))
            return body if "1 message(s)" in body else ""

        found = wait_until(by_key, 30, "the key order-3 in the node's index")
        assert f'href="/instances/{instance.pk}/messages/{ids[3]}/"' in found and "order 3" in found
        # By id.
        assert f'href="/instances/{instance.pk}/messages/{ids[5]}/"' in _text(member.get(base, {"msg_id": ids[5]}))
        # By store time: 25 on the first page, the node's cursor drives "Next page" to the last 2.
        query = {"topic": "orders", "since": since.strftime("%Y-%m-%dT%H:%M")}
        first = _text(member.get(base, query))
        assert "25 message(s)" in first
        cursor = re.search(r"cursor=(\d+)%3A(\d+)", first)
        assert cursor, "no next-page link"
        second = _text(member.get(base, {**query, "cursor": f"{cursor.group(1)}:{cursor.group(2)}"}))
        assert "2 message(s)" in second
        listed = set(re.findall(rf"/instances/{instance.pk}/messages/([0-9A-F]+)/", first + second))
        assert listed == set(ids)
        # A topic of no instance of ours is not a choice; nothing reaches the node.
        assert "Select a valid choice" in _text(member.get(base, {"topic": "elsewhere", "key": "k"}))

        # The trace of an acked message is a timeline in time order.
        trace = member.get(f"{base}{ids[3]}/")
        body = _text(trace)
        assert trace.status_code == 200
        positions = [body.index(f'">{label}</span>') for label in ("Sent", "Stored", "Delivered", "Acked")]
        assert positions == sorted(positions)
        assert f'acknowledged</span> by <span class="mono">{consumer.client_id}</span>' in body

        # Dead letters: two deliveries without an ack move a message to %DLQ%billing.
        poison = send(b"poison", "order-poison")
        receive_until(consumer, {b"poison"}, ack=False, invisible_s=1)  # attempt 1
        receive_until(consumer, {b"poison"}, ack=False, invisible_s=1)  # attempt 2, the last
        dlq_url = f"/instances/{instance.pk}/groups/{group.pk}/dlq/"
        assert viewer.get(dlq_url).status_code == 403

        def dead_letter() -> str:
            listing = _text(member.get(dlq_url))
            return listing if "1 dead letter(s)" in listing else ""

        listing = wait_until(dead_letter, 60, "the poison message to reach the DLQ")
        dlq_id = re.search(r'<td class="mono">([0-9A-F]+)</td><td class="mono">orders</td>', listing).group(1)
        assert poison in listing and "/resend/" not in listing  # members read, admins resend
        resend_url = f"{dlq_url}{dlq_id}/resend/"
        assert member.post(resend_url).status_code == 403
        owner = browser(tenant.users["owner"])
        confirm = _text(owner.get(resend_url))
        assert "replayed to every consumer group subscribed to" in confirm and "Resend to orders" in confirm
        assert not AuditLog.objects.filter(action="dlq_resend").exists()  # the confirmation page changes nothing
        done = _text(owner.post(resend_url, follow=True))
        resent = re.search(r"Resent to topic orders as message ([0-9A-F]+)", done)
        assert resent, done[-2000:]
        assert resent.group(1) in {m.message_id for m in receive_until(consumer, {b"poison"})}
        entry = AuditLog.objects.get(action="dlq_resend")
        assert entry.actor == tenant.users["owner"] and entry.object_id == str(instance.pk)
        assert owner.get(f"{dlq_url}{ids[0]}/resend/").status_code == 404  # not a dead letter of this group

        # Reset the group to before the first send: the node's dry run, then apply (admins only).
        # Everything sent since is replayed: the orders, the poison message and its resent copy.
        group_url = f"/instances/{instance.pk}/groups/{group.pk}/"
        preview_query = {"topic": "orders", "timestamp": since.strftime("%Y-%m-%dT%H:%M")}
        replayed = SENT + 2
        member_view = _text(member.get(group_url, preview_query))
        assert f"<strong>{replayed}</strong> message(s) replayed" in member_view and "Apply reset" not in member_view
        admin = browser(tenant.users["admin"])
        preview = _text(admin.get(group_url, preview_query))
        assert f"<strong>{replayed}</strong> message(s) are delivered again and <strong>0</strong> skipped" in preview
        assert not AuditLog.objects.filter(action="reset_offset").exists()  # a preview changes nothing
        apply_url = f"{group_url}reset-offset/"
        form = {"topic": "orders", "timestamp_ms": str(int(since.timestamp() * 1000)), "confirm": "on"}
        for role in ("viewer", "member"):
            assert browser(tenant.users[role]).post(apply_url, form).status_code == 403
        assert "Tick the confirmation" in _text(admin.post(apply_url, {**form, "confirm": ""}, follow=True))
        assert not AuditLog.objects.filter(action="reset_offset").exists()
        applied = _text(admin.post(apply_url, form, follow=True))
        assert f"{replayed} message(s) will be delivered again, 0 skipped" in applied
        entry = AuditLog.objects.get(action="reset_offset")
        assert entry.actor == tenant.users["admin"] and entry.after["replayed"] == replayed
        assert {m.body for m in receive_until(consumer, {b"order 0", b"order 26"})} >= {b"order 0", b"order 26"}

        # Another organisation: 404 everywhere, for every role, and nothing is audited or changed.
        for role in ("owner", "viewer"):
            stranger = browser(other_tenant.users[role])
            for url in (f"{base}?msg_id={ids[0]}", f"{base}{ids[0]}/", dlq_url, resend_url, group_url):
                assert stranger.get(url).status_code == 404, (role, url)
            for url, data in ((apply_url, form), (resend_url, {})):
                assert stranger.post(url, data).status_code == 404, (role, url)
        assert AuditLog.objects.filter(action__in=["reset_offset", "dlq_resend"]).count() == 2
    finally:
        consumer.shutdown()
        producer.shutdown()


@pytest.mark.django_db
def test_node_away_is_said_plainly(tenant: Any) -> None:
    instance = services.instance_create(organisation=tenant.organisation, name="prod", actor=services.SYSTEM)
    services.topic_create(instance=instance, name="orders", actor=services.SYSTEM)
    group = services.group_create(instance=instance, name="billing", actor=services.SYSTEM)
    msg = "0A1B2C3D4E5F"
    member = browser(tenant.users["member"])
    never_placed = member.get(f"/instances/{instance.pk}/messages/{msg}/")
    assert never_placed.status_code == 409 and "on a broker node yet" in never_placed.content.decode()

    _place(instance, status=NodeStatus.DOWN)
    for url in (f"/instances/{instance.pk}/messages/{msg}/", f"/instances/{instance.pk}/groups/{group.pk}/dlq/",
                f"/instances/{instance.pk}/messages/?topic=orders&key=k"):
        response = member.get(url)
        body = response.content.decode()
        assert response.status_code == 503, url
        assert "The broker node serving this instance is unavailable right now" in body and 'role="alert"' in body
    refused = browser(tenant.users["admin"]).post(f"/instances/{instance.pk}/groups/{group.pk}/reset-offset/",
                                                  {"topic": "orders", "timestamp_ms": "0", "confirm": "on"}, follow=True)
    assert "The reset was not applied." in refused.content.decode() and "unavailable right now" in refused.content.decode()
    assert not AuditLog.objects.filter(action="reset_offset").exists()
