"""The cheap receive/ack paths keep the semantics: ack_many, v1/v2 handles across a restart,
the trace ring, cursor offsets written from live cursors."""

from __future__ import annotations

from brokers.node.delivery import AckStatus, ConsumerGroup
from brokers.node.delivery.receipt import Receipt
from brokers.node.filter import FilterType, compile_filter
from brokers.node.store import NewMessage

TOPIC = "ns1%orders"
G = ConsumerGroup("ns1", "g1", max_delivery_attempts=3)


async def send(engine, n: int, queue: int = 0, tag: str = "") -> None:
    for i in range(n):
        assert (await engine.put(NewMessage(topic=TOPIC, queue_id=queue,
                                            body=f"m{i}".encode(), tag=tag))).ok


async def recv(engine, n=32, **kw):
    return await engine.receive(group=G, topic=TOPIC, client_id="c1", max_messages=n,
                                invisible_ms=10_000, **kw)


async def test_ack_many_matches_single_acks(harness) -> None:
    e = harness.engine
    await send(e, 6)
    ds = await recv(e)
    assert len(ds) == 6
    other = ConsumerGroup("ns1", "other")
    assert await e.ack_many(group=other, topic=TOPIC, receipt_handles=[ds[0].receipt_handle]) \
        == [AckStatus.INVALID_HANDLE]
    handles = [d.receipt_handle for d in ds[:3]] + ["junk", ds[0].receipt_handle]
    assert await e.ack_many(group=G, topic=TOPIC, receipt_handles=handles) == [
        AckStatus.OK, AckStatus.OK, AckStatus.OK, AckStatus.INVALID_HANDLE,
        AckStatus.ALREADY_ACKED]
    assert e.committed_offset(G, TOPIC, 0) == 3
    await harness.advance(20_000)  # the rest expire: redelivered with attempt 2
    again = await recv(e)
    assert [d.message.queue_offset for d in again] == [3, 4, 5]
    assert [d.delivery_attempt for d in again] == [2, 2, 2]
    # the superseded handles of the first delivery answer EXPIRED
    assert await e.ack_many(group=G, topic=TOPIC,
                            receipt_handles=[d.receipt_handle for d in ds[3:]]) \
        == [AckStatus.EXPIRED] * 3
    assert await e.ack_many(group=G, topic=TOPIC,
                            receipt_handles=[d.receipt_handle for d in again]) \
        == [AckStatus.OK] * 3
    assert e.committed_offset(G, TOPIC, 0) == 6


async def test_handles_survive_a_restart_and_v1_handles_still_work(harness) -> None:
    e = harness.engine
    await send(e, 3)
    ds = await recv(e)
    batch_id = int(ds[0].receipt_handle.split(".")[1], 16)
    # A v1 handle (format issued before v2) for entry 2 of the same batch.
    v1 = e._codec.encode_v1(G.key, TOPIC, Receipt(batch_id, 2, ds[2].invisible_until_ms))
    assert v1.startswith("v1.")
    await e.flush()
    e = await harness.restart()
    assert await e.ack(group=G, topic=TOPIC, receipt_handle=ds[0].receipt_handle) is AckStatus.OK
    assert await e.ack(group=G, topic=TOPIC, receipt_handle=v1) is AckStatus.OK
    tampered = ds[1].receipt_handle[:-2] + "00"
    if tampered == ds[1].receipt_handle:
        tampered = ds[1].receipt_handle[:-2] + "11"
    assert await e.ack(group=G, topic=TOPIC, receipt_handle=tampered) is AckStatus.INVALID_HANDLE
    assert await e.ack(group=G, topic=TOPIC, receipt_handle=ds[1].receipt_handle) is AckStatus.OK
    assert e.committed_offset(G, TOPIC, 0) == 3
    await e.flush()
    e = await harness.restart()
    assert e.committed_offset(G, TOPIC, 0) == 3
    assert await recv(e) == []


async def test_tag_star_and_filters_on_the_fast_path(harness) -> None:
    e = harness.engine
    for i in range(6):
        assert (await e.put(NewMessage(topic=TOPIC, queue_id=0, body=b"x",
                                       tag="a" if i % 2 else "b"))).ok
    star = await recv(e, n=4, filter=compile_filter(FilterType.TAG, "*"))
    assert [d.message.queue_offset for d in star] == [0, 1, 2, 3]
    await e.ack_many(group=G, topic=TOPIC, receipt_handles=[d.receipt_handle for d in star])
    only_a = await recv(e, filter=compile_filter(FilterType.TAG, "a"))
    assert [d.message.queue_offset for d in only_a] == [5]
    await e.ack_many(group=G, topic=TOPIC, receipt_handles=[d.receipt_handle for d in only_a])
    assert e.committed_offset(G, TOPIC, 0) == 6


async def test_trace_ring_answers_per_message(harness) -> None:
    e = harness.engine
    await send(e, 3)
    ds = await recv(e)
    await e.ack(group=G, topic=TOPIC, receipt_handle=ds[1].receipt_handle)
    ev = e.trace.events(TOPIC, 0, 1)
    assert [x["event"] for x in ev] == ["delivered", "acked"]
    assert ev[0]["group"] == G.key and ev[0]["client_id"] == "c1" and ev[0]["attempt"] == 1
    assert [x["event"] for x in e.trace.events(TOPIC, 0, 2)] == ["delivered"]
    assert e.trace.events(TOPIC, 1, 1) == []
    e.trace._events.clear()
    assert e.trace.events(TOPIC, 0, 1) == []


async def test_redelivery_of_a_batch_with_holes_reads_runs(harness) -> None:
    e = harness.engine
    await send(e, 6)
    ds = await recv(e)
    await e.ack_many(group=G, topic=TOPIC, receipt_handles=[ds[1].receipt_handle,
                                                           ds[3].receipt_handle])
    await harness.advance(20_000)
    first = await recv(e, n=3)
    assert [(d.message.queue_offset, d.delivery_attempt) for d in first] == [(0, 2), (2, 2), (4, 2)]
    assert [bytes(d.message.body) for d in first] == [b"m0", b"m2", b"m4"]
    rest = await recv(e)
    assert [(d.message.queue_offset, d.delivery_attempt) for d in rest] == [(5, 2)]
    await e.ack_many(group=G, topic=TOPIC, receipt_handles=[d.receipt_handle
                                                           for d in first + rest])
    assert e.committed_offset(G, TOPIC, 0) == 6


async def test_concurrent_receivers_with_read_ahead_lose_and_duplicate_nothing(harness) -> None:
    """6 receive loops over 4 queues (read-ahead buffers in play), some deliveries left to expire
    and redelivered, the rest acked in ack_many batches: every message is acked exactly once and
    no message is ever in flight twice."""
    import asyncio
    import random

    e = harness.engine
    total = 1200
    for start in range(0, total, 100):
        res = await e.put_many([NewMessage(topic=TOPIC, queue_id=i % 4, body=f"{i}".encode())
                                for i in range(start, start + 100)])
        assert all(r.ok for r in res)
    rng = random.Random(7)
    acked: set[bytes] = set()
    inflight: set[bytes] = set()
    expiring: set[bytes] = set()
    rounds_done = 0

    async def loop(client: str) -> None:
        idle = 0
        while len(acked) < total and idle < 50:
            ds = await e.receive(group=G, topic=TOPIC, client_id=client,
                                 max_messages=rng.choice((1, 7, 32)), invisible_ms=10_000)
            if not ds:
                idle += 1
                await asyncio.sleep(0)
                continue
            idle = 0
            keep = []
            for d in ds:
                body = bytes(d.message.body)
                assert body not in inflight and body not in acked
                if body in expiring:  # only after its invisibility ran out (clock advanced)
                    assert d.delivery_attempt == 2 and rounds_done
                    expiring.discard(body)
                if rng.random() < 0.1 and d.delivery_attempt < 2:
                    expiring.add(body)
                    continue  # left to expire
                inflight.add(body)
                keep.append(d)
            await asyncio.sleep(0)
            st = await e.ack_many(group=G, topic=TOPIC,
                                  receipt_handles=[d.receipt_handle for d in keep])
            assert st == [AckStatus.OK] * len(keep)
            for d in keep:
                body = bytes(d.message.body)
                inflight.discard(body)
                acked.add(body)

    for _ in range(3):
        await asyncio.gather(*(loop(f"c{i}") for i in range(6)))
        await harness.advance(20_000)  # the unacked ones expire and come back with attempt 2
        rounds_done += 1
    assert len(acked) == total
    assert all(e.committed_offset(G, TOPIC, q) == total // 4 for q in range(4))


async def test_a_filtered_receive_leaves_no_gap_for_an_unfiltered_one(harness) -> None:
    """Filtered reads skip entries, so what they leave must not be reused as read-ahead."""
    e = harness.engine
    for i in range(8):
        assert (await e.put(NewMessage(topic=TOPIC, queue_id=0, body=f"m{i}".encode(),
                                       tag="a" if i % 2 else "b"))).ok
    (first,) = await recv(e, n=1, filter=compile_filter(FilterType.TAG, "a"))
    assert first.message.queue_offset == 1
    rest = await recv(e, n=3)  # no filter: continues right after offset 1
    assert [d.message.queue_offset for d in rest] == [2, 3, 4]
    more = await recv(e, n=32, filter=compile_filter(FilterType.TAG, "*"))
    assert [d.message.queue_offset for d in more] == [5, 6, 7]


async def test_put_many_results_are_plain_put_results(harness) -> None:
    """put_many builds its PutResults with tuple.__new__ (no keyword defaults): they must equal
    what PutResult(append) makes, also once PutResult gains a field; and one notify per topic
    still wakes a long poll on each topic of a mixed batch."""
    import asyncio

    from brokers.node.delivery import PutResult

    e = harness.engine
    res = await e.put_many([NewMessage(topic=TOPIC, queue_id=0, body=b"a"),
                            NewMessage(topic=TOPIC, queue_id=1, body=b"b")])
    assert res == [PutResult(r.append) for r in res] and all(r.ok for r in res)
    assert [(r.transaction_id, r.visible, r.recall_handle) for r in res] == [("", True, "")] * 2
    other = "ns1%other"
    waiting = [asyncio.ensure_future(e.receive(group=G, topic=t, client_id="c1", max_messages=8,
                                                invisible_ms=10_000, long_poll_ms=5_000))
               for t in (TOPIC + "-empty", other)]
    await asyncio.sleep(0)
    await e.put_many([NewMessage(topic=TOPIC + "-empty", queue_id=0, body=b"c"),
                      NewMessage(topic=other, queue_id=0, body=b"d")])
    got = await asyncio.wait_for(asyncio.gather(*waiting), 2)
    assert [[bytes(d.message.body) for d in ds] for ds in got] == [[b"c"], [b"d"]]
