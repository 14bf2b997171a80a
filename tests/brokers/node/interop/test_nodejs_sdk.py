"""Interop with the official RocketMQ Node.js client (npm ``rocketmq-client-nodejs``, pinned in
tests/interop/nodejs/package-lock.json) against a real node process.

The Node.js side runs ``tests/interop/nodejs/client.js`` (produce / SimpleConsumer receive+ack,
JSON on stdout) as a subprocess; the Python side uses the official Python SDK. Install the Node.js
dependencies with ``npm ci --prefix tests/interop/nodejs`` (.ci/run does it when npm exists).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from typing import Any

import pytest
from rocketmq import FilterExpression, Message, Producer, SimpleConsumer

from ..conftest import ALL_ACCESS, OTHER_TENANT, REPO, NodeHandle, default_state

NODE_DIR = REPO / "tests" / "interop" / "nodejs"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(NODE is None, reason="node (Node.js) is not installed"),
    pytest.mark.skipif(
        not (NODE_DIR / "node_modules" / "rocketmq-client-nodejs").is_dir(),
        reason="Node.js client not installed: run npm ci --prefix tests/interop/nodejs",
    ),
]


def _state() -> dict[str, Any]:
    state = default_state()
    for ns in ("ns1", "ns2"):
        state["namespaces"][ns]["groups"].update({"g-node": {}, "g-py": {}})
    return state


@pytest.fixture
def node(start_node: Any) -> NodeHandle:
    return start_node(_state())


def run_js(node: NodeHandle, command: str, spec: dict[str, Any],
           creds: tuple[str, str, str] = ALL_ACCESS) -> dict[str, Any]:
    """Run client.js; returns its JSON result ({"sent"|"received"|"error": ...})."""
    ak, sk, ns = creds
    full = {"endpoint": node.endpoint, "accessKey": ak, "accessSecret": sk, "namespace": ns,
            **spec}
    proc = subprocess.run([str(NODE), "client.js", command, json.dumps(full)], cwd=NODE_DIR,
                          capture_output=True, text=True, timeout=60)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output from client.js (rc={proc.returncode}):\n{proc.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1])
    assert (proc.returncode == 0) == ("error" not in result), proc.stderr[-3000:]
    return result


def js_produce(node: NodeHandle, topic: str, messages: list[dict[str, Any]],
               creds: tuple[str, str, str] = ALL_ACCESS) -> list[str]:
    result = run_js(node, "produce", {"topic": topic, "messages": messages}, creds)
    assert "error" not in result, result
    return [s["messageId"] for s in result["sent"]]


def js_consume(node: NodeHandle, topic: str, group: str, expected: int,
               creds: tuple[str, str, str] = ALL_ACCESS, timeout_ms: int = 15000,
               ) -> list[dict[str, Any]]:
    result = run_js(node, "consume", {"topic": topic, "group": group, "expected": expected,
                                      "timeoutMs": timeout_ms, "awaitMs": 1000}, creds)
    assert "error" not in result, result
    return list(result["received"])


def py_consume(node: NodeHandle, topic: str, group: str, expected: int,
               creds: tuple[str, str, str] = ALL_ACCESS, timeout: float = 15) -> list[Message]:
    consumer = SimpleConsumer(node.client_config(*creds), group, {topic: FilterExpression()},
                              await_duration=1)
    consumer.startup()
    got: list[Message] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            batch = consumer.receive(16, 20) or []
            for m in batch:
                consumer.ack(m)
            got.extend(batch)
    finally:
        consumer.shutdown()
    return got


MESSAGES = [
    {"body": "héllo from node 0", "tag": "TagA", "keys": ["order-0", "cust-7"],
     "properties": {"color": "red", "n": "0"}},
    {"body": "hello from node 1", "tag": "TagB", "keys": ["order-1"],
     "properties": {"color": "blue", "n": "1"}},
    {"body": "hello from node 2", "tag": "TagA", "keys": [], "properties": {}},
]


def test_nodejs_messages_reach_nodejs_and_python_consumers_intact(node: NodeHandle) -> None:
    ids = js_produce(node, "orders", MESSAGES)
    assert len(set(ids)) == 3 and all(ids)

    by_id = {m["messageId"]: m for m in js_consume(node, "orders", "g-node", 3)}
    assert set(by_id) == set(ids)  # the ids the Node.js producer got back
    for mid, sent in zip(ids, MESSAGES):
        got = by_id[mid]
        assert got["topic"] == "orders"
        assert got["body"] == sent["body"] and got["tag"] == sent["tag"]
        assert sorted(got["keys"]) == sorted(sent["keys"])
        assert got["properties"] == sent["properties"]
        assert got["deliveryAttempt"] == 1 and got["corrupted"] is False

    # A second consumer group, on the Python SDK, gets the same three messages.
    py = {m.message_id: m for m in py_consume(node, "orders", "g-py", 3)}
    assert set(py) == set(ids)
    for mid, sent in zip(ids, MESSAGES):
        m = py[mid]
        assert m.body == sent["body"].encode() and m.tag == sent["tag"]
        assert set(m.keys) == set(sent["keys"]) and dict(m.properties) == sent["properties"]


def test_python_messages_reach_the_nodejs_consumer_intact(node: NodeHandle) -> None:
    producer = Producer(node.client_config(*ALL_ACCESS), ("orders",))
    producer.startup()
    sent: dict[str, Message] = {}
    try:
        for i in range(3):
            m = Message()
            m.topic, m.body, m.tag = "orders", f"from python {i} ✓".encode(), f"T{i}"
            m.keys = f"py-{i}"
            m.add_property("origin", "python")
            m.add_property("i", str(i))
            sent[producer.send(m).message_id] = m
    finally:
        producer.shutdown()

    got = {m["messageId"]: m for m in js_consume(node, "orders", "g-node", 3)}
    assert set(got) == set(sent)
    for mid, m in sent.items():
        assert got[mid]["body"] == m.body.decode() and got[mid]["tag"] == m.tag
        assert got[mid]["keys"] == list(m.keys)
        assert got[mid]["properties"] == dict(m.properties)
    # Acked by Node.js: nothing is left for the group.
    assert js_consume(node, "orders", "g-node", 1, timeout_ms=2500) == []


def test_nodejs_fifo_groups_in_order_and_delay_message(node: NodeHandle) -> None:
    groups = ["a", "b", "c", "d", "e"]
    fifo = [{"body": f"{g}:{n}", "messageGroup": g} for n in range(3) for g in groups]
    ids = js_produce(node, "fifo-orders", fifo)
    got = js_consume(node, "fifo-orders", "g-fifo", len(fifo), timeout_ms=20000)
    assert sorted(m["messageId"] for m in got) == sorted(ids)
    for g in groups:
        seq = [m["body"] for m in got if m["messageGroup"] == g]
        assert seq == [f"{g}:{n}" for n in range(3)]

    sent_at = time.time() * 1000
    [delayed_id] = js_produce(node, "delayed", [{"body": "later", "tag": "D", "delayMs": 2500}])
    [delayed] = js_consume(node, "delayed", "g-node", 1, timeout_ms=10000)
    assert delayed["messageId"] == delayed_id and delayed["body"] == "later"
    assert delayed["deliveryTimestamp"] >= sent_at + 2000
    assert delayed["receivedAt"] >= delayed["deliveryTimestamp"] - 200


def test_nodejs_delay_message_recalled_before_it_is_due(node: NodeHandle) -> None:
    result = run_js(node, "produce", {"topic": "delayed", "messages": [
        {"body": "keep", "delayMs": 2000}, {"body": "recall me", "delayMs": 2000, "recall": True},
    ]})
    keep, recalled = result["sent"]
    assert "recalledId" not in keep and recalled["recalledId"] == recalled["messageId"]
    got = js_consume(node, "delayed", "g-node", 2, timeout_ms=6000)
    assert [(m["messageId"], m["body"]) for m in got] == [(keep["messageId"], "keep")]


def test_nodejs_transactions_commit_rollback_and_a_checked_orphan(start_node: Any) -> None:
    # Checks start 1 s after the half message (6 s by default).
    node = start_node(_state(), env={"MQ_DELIVERY_TRANSACTION_CHECK_AFTER_MS": "1000",
                                     "MQ_DELIVERY_TICK_MS": "50"})
    result = run_js(node, "transact", {
        "topic": "txn", "checker": "commit", "waitChecks": 1, "timeoutMs": 15000,
        "messages": [{"body": "committed", "end": "commit"},
                     {"body": "rolled back", "end": "rollback"},
                     {"body": "orphan", "end": "open"}],
    })
    assert "error" not in result, result
    assert result["checked"] == ["orphan"]  # only the open one is checked back, over Telemetry
    ids = {entry["messageId"] for entry in result["sent"]}
    # The Python SDK sees exactly what was committed (by the producer or by its checker).
    got = py_consume(node, "txn", "g-py", 3, timeout=6)
    assert sorted(bytes(m.body) for m in got) == [b"committed", b"orphan"]
    assert {m.message_id for m in got} <= ids


def test_wrong_secret_is_refused_as_unauthorized(node: NodeHandle) -> None:
    ak, _, ns = ALL_ACCESS
    result = run_js(node, "produce", {"topic": "orders", "messages": [{"body": "x"}]},
                    (ak, "not-the-secret", ns))
    assert result["error"]["name"] == "UnauthorizedException"
    assert result["error"]["code"] == 40100
    assert "signature" in result["error"]["message"]


def test_namespace_isolation_between_tenants_with_the_same_topic_name(node: NodeHandle) -> None:
    other_ak, other_sk, other_ns = OTHER_TENANT
    # ns2's credential claiming ns1 (same topic name "orders" exists in both): refused.
    result = run_js(node, "produce", {"topic": "orders", "messages": [{"body": "intruder"}]},
                    (other_ak, other_sk, ALL_ACCESS[2]))
    assert result["error"]["name"] == "UnauthorizedException", result
    assert result["error"]["code"] == 40100
    # ns1's credential claiming ns2: refused too.
    ak, sk, _ = ALL_ACCESS
    result = run_js(node, "produce", {"topic": "orders", "messages": [{"body": "intruder"}]},
                    (ak, sk, other_ns))
    assert result["error"]["code"] == 40100, result

    # Each tenant's "orders" only sees its own messages.
    [ns2_id] = js_produce(node, "orders", [{"body": "ns2 only"}], OTHER_TENANT)
    [ns1_id] = js_produce(node, "orders", [{"body": "ns1 only"}])
    ns1 = js_consume(node, "orders", "g-node", 2, timeout_ms=3000)
    assert [(m["messageId"], m["body"]) for m in ns1] == [(ns1_id, "ns1 only")]
    ns2 = js_consume(node, "orders", "g-node", 2, OTHER_TENANT, timeout_ms=3000)
    assert [(m["messageId"], m["body"]) for m in ns2] == [(ns2_id, "ns2 only")]
