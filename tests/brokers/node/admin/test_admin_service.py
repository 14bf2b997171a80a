"""Admin handlers over a real store and delivery engine: lookups stay inside the namespace,
time-range paging, traces (delivered/acked, in flight, retried, dead-lettered), group status,
offset reset with a dry run, DLQ listing and resend; and the agent's request/response framing."""

from __future__ import annotations

import asyncio
import json

import pytest

from brokers.node.admin import AdminError
from brokers.node.agent.admin import answer
from brokers.node.delivery import ConsumerGroup
from tests.brokers.node.admin.conftest import Session

G = ConsumerGroup(namespace="ns1", name="g1")


async def test_message_by_id_belongs_to_the_namespace(node) -> None:
    mine = await node.put("ns1", "orders", b"hello", keys=["k1"], tag="t", props={"a": "1"})
    theirs = await node.put("ns2", "orders", b"secret")
    got = (await node.call("message.get", "ns1", msg_id=mine))["message"]
    assert got["msg_id"] == mine and got["topic"] == "orders" and got["body_text"] == "hello"
    assert got["keys"] == ["k1"] and got["tag"] == "t" and got["properties"] == {"a": "1"}
    assert got["born_host"] == "10.1.2.3:5555"
    for bad in (theirs, "00" * 16, "not-an-id"):
        with pytest.raises(AdminError) as err:
            await node.call("message.get", "ns1", msg_id=bad)
        assert err.value.code == "message_not_found"


async def test_message_by_key_only_sees_the_namespace_topic(node) -> None:
    a = await node.put("ns1", "orders", b"a", keys=["order-7"])
    await node.put("ns2", "orders", b"b", keys=["order-7"])
    await node.put("ns1", "other", b"c", keys=["order-7"])
    # the key index is filled by a background thread: wait until the ns1 entry is indexed
    for _ in range(500):
        found = await node.call("message.by_key", "ns1", topic="orders", key="order-7")
        if found["messages"]:
            break
        await asyncio.sleep(0.01)
    assert [m["msg_id"] for m in found["messages"]] == [a]


async def test_message_by_time_range_pages_with_a_cursor(node) -> None:
    ids = []
    for i in range(6):
        ids.append(await node.put("ns1", "orders", f"m{i}".encode(), queue_id=i % 2))
        node.clock.advance(1000)
    start = (await node.call("message.get", "ns1", msg_id=ids[1]))["message"]["store_timestamp_ms"]
    end = (await node.call("message.get", "ns1", msg_id=ids[5]))["message"]["store_timestamp_ms"]
    seen, cursor, pages = [], None, 0
    while True:
        page = await node.call("message.by_time", "ns1", topic="orders", from_ms=start,
                               to_ms=end, limit=2, cursor=cursor)
        seen += [m["msg_id"] for m in page["messages"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    # [start, end): messages 1..4, each exactly once, whatever the queue
    assert sorted(seen) == sorted(ids[1:5]) and len(seen) == 4
    assert pages >= 2
    other = await node.call("message.by_time", "ns2", topic="orders", from_ms=0)
    assert other["messages"] == []


async def test_trace_follows_delivery_ack_retry_and_dlq(node) -> None:
    group = ConsumerGroup(namespace="ns1", name="g1", max_delivery_attempts=2)
    acked = await node.put("ns1", "orders", b"acked", queue_id=0)
    retried = await node.put("ns1", "orders", b"retried", queue_id=0)
    trace = await node.call("message.trace", "ns1", msg_id=acked)
    assert trace["sent"]["born_host"] == "10.1.2.3:5555"
    assert trace["stored"]["queue_id"] == 0 and trace["stored"]["queue_offset"] == 0
    assert trace["deliveries"] == []  # no group has read the topic yet

    got = await node.receive(group, "orders", client="consumer-A", n=2)
    assert [d.message.msg_id for d in got] == [acked, retried]
    await node.ack(group, "orders", got[0])
    t = await node.call("message.trace", "ns1", msg_id=acked)
    (d,) = t["deliveries"]
    assert d["group"] == "g1" and d["status"] == "acked" and d["acked_by"] == "consumer-A"
    assert d["attempts"] == 1 and d["retried"] is False
    t = await node.call("message.trace", "ns1", msg_id=retried)
    (d,) = t["deliveries"]
    assert d["status"] == "in_flight" and d["client_id"] == "consumer-A" and d["attempts"] == 1

    await node.advance(31_000)  # invisibility ran out: waits for redelivery
    (d,) = (await node.call("message.trace", "ns1", msg_id=retried))["deliveries"]
    assert d["status"] == "awaiting_retry"
    again = await node.receive(group, "orders", client="consumer-B")
    assert [x.message.msg_id for x in again] == [retried] and again[0].delivery_attempt == 2
    (d,) = (await node.call("message.trace", "ns1", msg_id=retried))["deliveries"]
    assert d["status"] == "in_flight" and d["attempts"] == 2 and d["retried"] is True
    assert d["clients"] == ["consumer-A", "consumer-B"]

    await node.advance(31_000)  # second attempt was the last: moved to the DLQ
    (d,) = (await node.call("message.trace", "ns1", msg_id=retried))["deliveries"]
    assert d["status"] == "dead_lettered" and d["dlq"]["topic"] == "%DLQ%g1"
    copy = (await node.call("message.get", "ns1", msg_id=d["dlq"]["msg_id"]))["message"]
    assert copy["body_text"] == "retried"
    with pytest.raises(AdminError):
        await node.call("message.trace", "ns2", msg_id=retried)


async def test_dlq_status_is_found_without_the_event_ring(node) -> None:
    """After a restart the ring is empty: the DLQ copy is still found in the store (even before
    the background key index has caught up)."""
    group = ConsumerGroup(namespace="ns1", name="g1", max_delivery_attempts=1)
    mid = await node.put("ns1", "orders", b"x", keys=["kx"])
    await node.receive(group, "orders")
    await node.advance(31_000)
    node.engine.trace._events.clear()
    (d,) = (await node.call("message.trace", "ns1", msg_id=mid))["deliveries"]
    assert d["status"] == "dead_lettered"


async def test_group_status_reports_lag_inflight_and_clients(node) -> None:
    for i in range(5):
        await node.put("ns1", "orders", b"m", queue_id=i % 2)
    got = await node.receive(G, "orders", n=2)
    await node.ack(G, "orders", got[0])
    node.clients._sessions = {
        "c1": Session("c1", "ns1", "g1", 123.0, object()),
        "c2": Session("c2", "ns1", "other", 1.0),
        "c3": Session("c3", "ns2", "g1", 1.0),
    }
    st = await node.call("group.status", "ns1", group="g1")
    (topic,) = st["topics"]
    assert topic["topic"] == "orders"
    assert sum(q["max_offset"] for q in topic["queues"]) == 5
    assert st["lag"] == topic["lag"] == 4  # one acked; the other received one still counts
    assert sum(q["inflight"] for q in topic["queues"]) == 1
    assert st["clients"] == [{"client_id": "c1", "last_seen": 123.0, "stream_open": True}]
    assert st["dlq"] == {"topic": "%DLQ%g1", "messages": 0}
    other = await node.call("group.status", "ns2", group="g1")
    assert other["topics"] == [] and other["lag"] == 0


async def test_reset_offset_dry_run_then_replay(node) -> None:
    ids = []
    for i in range(4):
        ids.append(await node.put("ns1", "orders", f"m{i}".encode()))
        node.clock.advance(1000)
    for d in await node.receive(G, "orders"):
        await node.ack(G, "orders", d)
    assert await node.receive(G, "orders") == []
    ts = (await node.call("message.get", "ns1", msg_id=ids[2]))["message"]["store_timestamp_ms"]

    preview = await node.call("group.reset_offset", "ns1", group="g1", timestamp_ms=ts,
                              dry_run=True)
    assert preview["dry_run"] is True and preview["replayed"] == 2 and preview["skipped"] == 0
    (q,) = [q for q in preview["queues"] if q["queue_id"] == 0]
    assert (q["current_offset"], q["new_offset"]) == (4, 2)
    assert await node.receive(G, "orders") == []  # nothing changed

    done = await node.call("group.reset_offset", "ns1", group="g1", timestamp_ms=ts)
    assert done["dry_run"] is False and done["replayed"] == 2
    again = await node.receive(G, "orders")
    assert [d.message.msg_id for d in again] == ids[2:]

    # forward: skip everything not yet acked; old handles are dead
    forward = await node.call("group.reset_offset", "ns1", group="g1",
                              timestamp_ms=int(node.clock() * 1000) + 1)
    # the two re-received (unacked) messages are skipped
    assert forward["skipped"] == 2 and forward["queues"][0]["new_offset"] == 4
    st = await node.call("group.status", "ns1", group="g1")
    assert st["lag"] == 0 and sum(q["inflight"] for q in st["topics"][0]["queues"]) == 0
    status = await node.engine.ack(group=G, topic="ns1%orders",
                                   receipt_handle=again[0].receipt_handle)
    assert status.name != "OK"


async def test_reset_offset_needs_a_topic_for_a_group_that_never_consumed(node) -> None:
    await node.put("ns1", "orders", b"m")
    with pytest.raises(AdminError) as err:
        await node.call("group.reset_offset", "ns1", group="fresh", timestamp_ms=0, dry_run=True)
    assert err.value.code == "no_subscription"
    plan = await node.call("group.reset_offset", "ns1", group="fresh", topic="orders",
                           timestamp_ms=0, dry_run=True)
    assert plan["queues"][0]["new_offset"] == 0


async def test_dlq_list_and_resend(node) -> None:
    group = ConsumerGroup(namespace="ns1", name="g1", max_delivery_attempts=1)
    mid = await node.put("ns1", "orders", b"poison", queue_id=0, keys=["p1"], props={"u": "v"})
    await node.receive(group, "orders")
    await node.advance(31_000)
    dlq = await node.call("group.dlq", "ns1", group="g1")
    assert dlq["total"] == 1 and dlq["next_cursor"] is None
    (entry,) = dlq["messages"]
    assert entry["origin"]["topic"] == "orders" and entry["origin"]["msg_id"] == mid
    assert entry["body_text"] == "poison"
    assert (await node.call("group.dlq", "ns2", group="g1"))["messages"] == []

    for ns, grp in (("ns2", "g1"), ("ns1", "other")):
        with pytest.raises(AdminError) as err:
            await node.call("group.dlq_resend", ns, group=grp, msg_id=entry["msg_id"])
        assert err.value.code == "message_not_found"
    sent = await node.call("group.dlq_resend", "ns1", group="g1", msg_id=entry["msg_id"])
    assert sent["topic"] == "orders" and sent["origin_msg_id"] == mid and sent["msg_id"] != mid
    got = await node.receive(group, "orders")
    assert [d.message.msg_id for d in got] == [sent["msg_id"]]
    m = got[0].message
    assert bytes(m.body) == b"poison" and m.properties.get("u") == "v" and m.keys == ("p1",)
    assert "__DLQ_ORIGIN" not in m.properties and "__RETRY_TOPIC" not in m.properties


async def test_bad_requests_are_refused_with_codes(node) -> None:
    for op, ns, args, code in [
        ("nope", "ns1", {}, "unknown_op"),
        ("message.get", "", {"msg_id": "x"}, "invalid_argument"),
        ("message.get", "ns1%x", {"msg_id": "x"}, "invalid_argument"),
        ("message.by_key", "ns1", {"topic": "t"}, "invalid_argument"),
        ("message.by_time", "ns1", {"topic": "t", "from_ms": "yesterday"}, "invalid_argument"),
        ("message.by_time", "ns1", {"topic": "t", "from_ms": 0, "cursor": "x"}, "invalid_argument"),
    ]:
        with pytest.raises(AdminError) as err:
            await node.admin.handle(op, ns, args)
        assert err.value.code == code, (op, args)


class _Socket:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send(self, message: str) -> None:
        self.sent.append(json.loads(message))


async def test_agent_answers_requests_with_results_and_errors(node) -> None:
    mid = await node.put("ns1", "orders", b"x")
    ws = _Socket()
    await answer(ws, {"type": "admin.request", "id": "r1", "op": "message.get",
                      "namespace": "ns1", "args": {"msg_id": mid}}, node.admin.handle)
    await answer(ws, {"type": "admin.request", "id": "r2", "op": "message.get",
                      "namespace": "ns2", "args": {"msg_id": mid}}, node.admin.handle)
    await answer(ws, {"type": "admin.request", "id": "r3", "op": "message.get"}, None)

    async def broken(op, ns, args):
        raise RuntimeError("boom")

    await answer(ws, {"type": "admin.request", "id": "r4", "op": "x"}, broken)
    r1, r2, r3, r4 = ws.sent
    assert r1["type"] == "admin.response" and r1["id"] == "r1" and r1["ok"] is True
    assert r1["result"]["message"]["msg_id"] == mid
    assert r2 == {"type": "admin.response", "id": "r2", "ok": False,
                  "error": {"code": "message_not_found", "message": r2["error"]["message"]}}
    assert r3["ok"] is False and r3["error"]["code"] == "admin_unavailable"
    assert r4["ok"] is False and r4["error"]["code"] == "internal_error"


async def test_trace_of_a_delayed_message_follows_the_released_copy(node) -> None:
    """A delay send returns the id of the held (timer) copy; the trace follows it to the copy
    the timer released into the real topic, acked or dead-lettered there."""
    group = ConsumerGroup(namespace="ns1", name="g1", max_delivery_attempts=1)
    due = int(node.clock() * 1000) + 5000
    acked = await node.put("ns1", "orders", b"later", props={"__DELIVERY_TIME_MS": str(due)})
    dead = await node.put("ns1", "orders", b"later-dead", props={"__DELIVERY_TIME_MS": str(due)})
    t = await node.call("message.trace", "ns1", msg_id=acked)
    assert t["held"]["kind"] == "delay" and t["held"]["released"] is False
    assert t["held"]["topic"] == "orders" and t["deliveries"] == []

    await node.advance(6000)  # the timers fire
    got = await node.receive(group, "orders")
    assert sorted(bytes(d.message.body) for d in got) == [b"later", b"later-dead"]
    await node.ack(group, "orders", next(d for d in got if bytes(d.message.body) == b"later"))
    await node.advance(31_000)  # the other one expires on its only attempt: DLQ

    t = await node.call("message.trace", "ns1", msg_id=acked)
    assert t["held"]["released"] is True and t["message"]["topic"] == "orders"
    assert t["message"]["msg_id"] == t["held"]["released_msg_id"] != acked
    assert [(d["group"], d["status"]) for d in t["deliveries"]] == [("g1", "acked")]
    t = await node.call("message.trace", "ns1", msg_id=dead)
    (d,) = t["deliveries"]
    assert d["status"] == "dead_lettered"
    dlq = (await node.call("group.dlq", "ns1", group="g1"))["messages"]
    assert [m["origin"]["msg_id"] for m in dlq] == [dead]  # the id the producer got back
