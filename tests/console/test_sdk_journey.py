"""All real: the console served by daphne (ASGI, so its websocket works in the browser), a broker
node provisioned by the fleet's task, the official RocketMQ Python SDK sending through the
endpoint and credential the console handed out and consuming them; the console finds a message by
key, shows its trace, previews and applies an offset reset, and charts the messages.

A separate daphne process shares the test database and the channel layer, so this needs
PostgreSQL and Redis (DATABASE_URL and REDIS_URL, as in CI).
"""
from __future__ import annotations

import re
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection

from brokers.drivers.local import LocalProcessDriver
from brokers.models import BrokerNode, MetricPoint
from brokers.tasks import provision_instance_task
from tenants.models import AuditLog, Instance
from tests.console.conftest import CHROMIUM, log_in, new_page, shot
from tests.node_state import node_has_applied
from tests.support import free_port, needs_shared_services, wait_until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (.ci/run installs it)"),
    needs_shared_services,
]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def web(settings: Any, tmp_path: Path) -> Iterator[str]:
    """daphne serving the whole app on the test database; nodes started here report to it."""
    port = free_port()
    settings.MQ_NODE_ROOT = str(tmp_path / "nodes")
    settings.MQ_CONTROL_PLANE_WS_URL = f"ws://127.0.0.1:{port}/ws/nodes/"
    settings.MQ_PROVISION_TIMEOUT_S = 30
    db = urlsplit(os.environ["DATABASE_URL"])
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"} | {
        "DJANGO_SETTINGS_MODULE": "mqplatform.settings.test",
        "DATABASE_URL": urlunsplit(db._replace(path="/" + connection.settings_dict["NAME"])),
        "MQ_ENCRYPTION_KEYS": ",".join(django_settings.MQ_ENCRYPTION_KEYS),
        "SECRET_KEY": django_settings.SECRET_KEY,
    }
    log = tmp_path / "daphne.log"
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
                                    "mqplatform.asgi:application"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)

    def listening() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    try:
        wait_until(listening, 30, "daphne to listen")
        yield f"http://127.0.0.1:{port}"
    finally:
        driver = LocalProcessDriver(Path(settings.MQ_NODE_ROOT))
        for node in BrokerNode.objects.exclude(pid=None):
            driver.stop(node, grace_s=10)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _converged(namespace: str, topic: str, access_key: str | None = None) -> bool:
    nodes = list(BrokerNode.objects.exclude(pid=None))
    return bool(nodes) and all(
        node_has_applied(node, namespace, topics={topic}, access_key=access_key, acl_rules=2 if access_key else 0)
        for node in nodes
    )


def _send(endpoint: str, ak: str, sk: str, namespace: str, topic: str, count: int) -> None:
    from rocketmq import ClientConfiguration, Credentials, Message, Producer

    producer = Producer(ClientConfiguration(endpoint, Credentials(ak, sk), namespace=namespace, request_timeout=5), (topic,))
    producer.startup()
    try:
        for n in range(count):
            message = Message()
            message.topic, message.body, message.keys = topic, f"order {n}".encode(), f"order-{n}"
            assert producer.send(message).message_id
    finally:
        producer.shutdown()


def _consume(endpoint: str, ak: str, sk: str, namespace: str, topic: str, group: str, count: int) -> None:
    """Receive and ack until ``count`` messages arrived (so traces show deliveries and acks)."""
    from rocketmq import ClientConfiguration, Credentials, FilterExpression, SimpleConsumer

    config = ClientConfiguration(endpoint, Credentials(ak, sk), namespace=namespace, request_timeout=10)
    consumer = SimpleConsumer(config, group, {topic: FilterExpression()}, await_duration=3)
    consumer.startup()
    try:
        bodies: set[bytes] = set()
        deadline = time.monotonic() + 60
        while len(bodies) < count:
            assert time.monotonic() < deadline, f"only received {sorted(bodies)}"
            for message in consumer.receive(16, 15):
                consumer.ack(message)
                bodies.add(message.body)
    finally:
        consumer.shutdown()


def _off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` in a plain thread: Playwright's sync API keeps an event loop running in this one,
    where async_to_sync (channel-layer pushes) and the SDK's own loop refuse to run."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def _provision(instance_id: int) -> str:
    try:
        return provision_instance_task.delay(instance_id).get()
    finally:
        connection.close()


def test_messages_sent_with_the_sdk_are_found_traced_reset_and_charted(chromium: Any, web: str, make_tenant: Any) -> None:
    from playwright.sync_api import expect

    make_tenant("acme")
    page = next(pages := new_page(chromium, web))
    log_in(page, "owner@acme.example")
    expect(page.locator("link[href$='console.css']")).to_have_count(1)
    assert page.evaluate("getComputedStyle(document.querySelector('.topbar')).display") == "flex"  # CSS served

    page.get_by_role("link", name="Create your first instance").click()
    page.get_by_label("Name").fill("prod")
    page.get_by_role("button", name="Create instance").click()
    expect(page.locator("#instance-status")).to_contain_text("Provisioning")
    instance = Instance.objects.get(name="prod")
    assert _off_loop(_provision, instance.pk) == "ready"
    instance.refresh_from_db()
    # The websocket (or the polling fallback) brings the endpoint in without a manual reload.
    expect(page.locator("#endpoint")).to_have_value(instance.endpoint, timeout=15_000)

    for link, button, fields in (("New topic", "Create topic", {"Name": "orders"}),
                                 ("New group", "Create group", {"Name": "billing"})):
        page.get_by_role("link", name=link).click()
        for label, value in fields.items():
            page.get_by_label(label, exact=True).fill(value)
        page.get_by_role("button", name=button).click()
        expect(page.get_by_role("cell", name=fields["Name"], exact=True)).to_be_visible()

    page.get_by_role("link", name="Credentials", exact=True).first.click()
    page.get_by_role("button", name="Create credential").click()
    access_key, secret_key = page.locator("#new-ak").input_value(), page.locator("#new-sk").input_value()
    page.get_by_role("link", name="add ACL rules").click()
    for resource, pattern, actions in (("topic", "orders", ["pub", "sub"]), ("group", "*", ["sub"])):
        page.get_by_label("Resource").select_option(resource)
        page.get_by_label("Name pattern").fill(pattern)
        for action in actions:
            page.locator(f"input[name=actions][value={action}]").check()
        page.get_by_role("button", name="Add rule").click()
        expect(page.get_by_text("ACL rule added.")).to_be_visible()

    wait_until(lambda: _converged(instance.namespace, "orders", access_key), 30, "the node to apply topic, credential and rules")
    before_send = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=1)
    _off_loop(_send, instance.endpoint, access_key, secret_key, instance.namespace, "orders", 7)
    _off_loop(_consume, instance.endpoint, access_key, secret_key, instance.namespace, "orders", "billing", 7)

    # The group page asks the node itself over the admin channel.
    page.goto(f"/instances/{instance.pk}/")
    page.get_by_role("link", name="billing", exact=True).click()
    expect(page.get_by_text("live from the broker node")).to_be_visible()
    expect(page.get_by_role("heading", name="Online clients")).to_be_visible()

    # Find a message by its key (the node indexes keys in the background: search until it is there).
    page.goto(f"/instances/{instance.pk}/")
    page.get_by_role("link", name="Messages", exact=True).click()
    page.get_by_label("Topic").select_option("orders")
    page.get_by_label("Key").fill("order-3")
    page.get_by_role("button", name="Find messages").click()
    deadline = time.monotonic() + 30
    while page.get_by_role("heading", name="1 message(s)").count() == 0:
        assert time.monotonic() < deadline, "the key order-3 never showed up"
        time.sleep(0.5)
        page.reload()
    row = page.get_by_role("row").filter(has_text="order-3")
    expect(row).to_contain_text("order 3")
    shot(page, "08-messages-by-key")
    row.get_by_role("link").click()
    expect(page.get_by_role("heading", name=re.compile("^Message "))).to_be_visible()
    timeline = page.locator("ol.timeline")
    for label in ("Sent", "Stored", "Delivered", "Acked"):
        expect(timeline.get_by_text(label, exact=True)).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="billing")).to_contain_text("acknowledged")
    shot(page, "09-message-trace")

    # The same topic by store time: all seven on one page.
    page.goto(f"/instances/{instance.pk}/messages/")
    page.get_by_label("Topic").select_option("orders")
    page.get_by_label("Stored from (UTC)").fill(before_send.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Find messages").click()
    expect(page.get_by_role("heading", name="7 message(s)")).to_be_visible()

    # Reset the group to before the send: preview (the node's dry run), then apply.
    page.goto(f"/instances/{instance.pk}/")
    page.get_by_role("link", name="billing", exact=True).click()
    page.get_by_label("Topic").select_option("orders")
    page.get_by_label("Reset to (UTC)").fill(before_send.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Preview").click()
    confirm = page.locator("#apply-reset")
    expect(confirm).to_contain_text("7 message(s) are delivered again and 0 skipped")
    shot(page, "10-reset-offset-preview")
    confirm.get_by_label(re.compile("I understand")).check()
    confirm.get_by_role("button", name="Apply reset").click()
    expect(page.locator(".flash")).to_contain_text("7 message(s) will be delivered again, 0 skipped")
    assert AuditLog.objects.filter(action="reset_offset", object_id=str(instance.pk)).count() == 1

    # The node reports its counters every heartbeat; the control plane stores them per minute.
    def reported() -> int:
        return sum(MetricPoint.objects.filter(instance=instance, metric="messages_in").values_list("value", flat=True))

    wait_until(lambda: reported() >= 7, 15, "the node's metrics reports to count the 7 messages")
    page.goto(f"/instances/{instance.pk}/metrics/")
    expect(page.locator('.chart[data-metric="messages_in"] canvas')).to_have_count(1)
    # Points are per minute: when a minute turns during the test the latest one may hold 0, so
    # the note is checked for its shape and the points for their sum.
    expect(page.locator('.chart-note[data-for="messages_in"]')).to_contain_text(
        re.compile(r"\b[1-9]\d* points?, latest \d+"))
    total = page.evaluate(
        "fetch(document.getElementById('charts').dataset.api + '?metric=messages_in&org=' +"
        " document.getElementById('charts').dataset.org).then(r => r.json()).then(b => b.points.reduce((a, p) => a + p[1], 0))")
    assert total >= 7
    shot(page, "07-dashboard-after-sdk-send")
    next(pages, None)
