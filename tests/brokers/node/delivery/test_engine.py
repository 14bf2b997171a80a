"""Delivery engine over a real store: receive/ack, redelivery, DLQ, FIFO, filters, broadcast."""

from __future__ import annotations

import asyncio

from brokers.node.delivery import (
    AckStatus,
    ChangeInvisibleStatus,
    ConsumerGroup,
    DlqStatus,
    dlq_topic,
)
from brokers.node.filter import FilterType, compile_filter
from brokers.node.store import NewMessage
from brokers.node.store.model import (
    PROP_DLQ_ORIGIN,
    PROP_MESSAGE_GROUP,
    PROP_ORIGIN_TOPIC,
    PROP_RETRY_TOPIC,
)

TOPIC = "ns1%orders"
G = ConsumerGroup("ns1", "g1", max_delivery_attempts=3)


def msg(i: int, queue: int = 0, tag: str = "", **props: str) -> NewMessage:
    return NewMessage(topic=TOPIC, queue_id=queue, body=f"m{i}".encode(), tag=tag,
                      properties=props)


async def send(engine, n: int, queue: int = 0, start: int = 0, **kw) -> None:
    for i in range(start, start + n):
        assert (await engine.put(msg(i, queue, **kw))).ok


async def recv(engine, group=G, n=32, invisible_ms=10_000, client="c1", **kw):
    return await engine.receive(group=group, topic=TOPIC, client_id=client, max_messages=n,
                                invisible_ms=invisible_ms, **kw)


def bodies(ds) -> list[bytes]:
    return [bytes(d.message.body) for d in ds]


async def test_receive_makes_messages_invisible_and_ack_removes_them(harness) -> None:
    e = harness.engine
    await send(e, 5)
    first = await recv(e, n=3)
    assert bodies(first) == [b"m0", b"m1", b"m2"]
    assert all(d.delivery_attempt == 1 for d in first)
    assert len({d.receipt_handle for d in first}) == 3
    assert bodies(await recv(e)) == [b"m3", b"m4"]
    assert await recv(e) == []
    for d in first:
        assert await e.ack(group=G, topic=TOPIC, receipt_handle=d.receipt_handle) is AckStatus.OK
    # repeat ack is harmless
    assert await e.ack(group=G, topic=TOPIC, receipt_handle=first[0].receipt_handle) in (
        AckStatus.OK, AckStatus.ALREADY_ACKED)
    await harness.advance(20_000)
    assert bodies(await recv(e)) == [b"m3", b"m4"]  # unacked ones come back, acked never


async def test_offset_advances_only_past_contiguous_acks(harness) -> None:
    e = harness.engine
    await send(e, 4)
    ds = await recv(e)
    await e.ack(group=G, topic=TOPIC, receipt_handle=ds[1].receipt_handle)
    await e.ack(group=G, topic=TOPIC, receipt_handle=ds[2].receipt_handle)
    assert e.committed_offset(G, TOPIC, 0) == 0
    await e.ack(group=G, topic=TOPIC, receipt_handle=ds[0].receipt_handle)
    assert e.committed_offset(G, TOPIC, 0) == 3
    lag = e.group_lag(G, TOPIC)
    assert lag[0].lag == 1 and lag[0].inflight == 1


async def test_forged_foreign_and_garbage_handles_are_invalid(harness) -> None:
    e = harness.engine
    await send(e, 1)
    (d,) = await recv(e)
    other = ConsumerGroup("ns1", "other")
    assert await e.ack(group=other, topic=TOPIC, receipt_handle=d.receipt_handle) \
        is AckStatus.INVALID_HANDLE
    assert await e.ack(group=G, topic="ns1%else", receipt_handle=d.receipt_handle) \
        is AckStatus.INVALID_HANDLE
    tampered = d.receipt_handle[:-1] + ("0" if d.receipt_handle[-1] != "0" else "1")
    assert await e.ack(group=G, topic=TOPIC, receipt_handle=tampered) is AckStatus.INVALID_HANDLE
    for junk in ["", "x", "v1.1.0.0.00", "v1.zz.0.0." + "0" * 20, "a b c"]:
        assert await e.ack(group=G, topic=TOPIC, receipt_handle=junk) is AckStatus.INVALID_HANDLE
    assert await e.ack(group=G, topic=TOPIC, receipt_handle=d.receipt_handle) is AckStatus.OK


async def test_redelivery_counts_attempts_then_dead_letters(harness) -> None:
    e = harness.engine
    await send(e, 1)
    for attempt in (1, 2, 3):
        (d,) = await recv(e, invisible_ms=1000)
        assert d.delivery_attempt == attempt
        await harness.advance(1500)
        assert await e.ack(group=G, topic=TOPIC, receipt_handle=d.receipt_handle) \
            is AckStatus.EXPIRED
    assert await recv(e) == []  # third attempt expired: moved to the DLQ, not redelivered
    assert e.committed_offset(G, TOPIC, 0) == 1
    dlq = dlq_topic("ns1", "g1")
    dlq_group = ConsumerGroup("ns1", "dlq-reader")
    (dead,) = await e.receive(group=dlq_group, topic=dlq, client_id="c", max_messages=5,
                              invisible_ms=10_000)
    assert bytes(dead.message.body) == b"m0"
    assert dead.message.properties[PROP_RETRY_TOPIC] == TOPIC
    assert PROP_ORIGIN_TOPIC not in dead.message.properties  # delivered as the DLQ topic's
    assert dead.message.properties[PROP_DLQ_ORIGIN] == G.key


async def test_change_invisible_returns_new_handle_and_kills_old(harness) -> None:
    e = harness.engine
    await send(e, 1)
    (d,) = await recv(e, invisible_ms=30_000)
    r = await e.change_invisible(group=G, topic=TOPIC, receipt_handle=d.receipt_handle,
                                 invisible_ms=2000)
    assert r.status is ChangeInvisibleStatus.OK and r.receipt_handle != d.receipt_handle
    assert await e.ack(group=G, topic=TOPIC, receipt_handle=d.receipt_handle) is AckStatus.EXPIRED
    bad = await e.change_invisible(group=G, topic=TOPIC, receipt_handle=d.receipt_handle,
                                   invisible_ms=2000)
    assert bad.status is ChangeInvisibleStatus.EXPIRED and bad.receipt_handle == d.receipt_handle
    illegal = await e.change_invisible(group=G, topic=TOPIC, receipt_handle=r.receipt_handle,
                                       invisible_ms=13 * 3600 * 1000)
    assert illegal.status is ChangeInvisibleStatus.ILLEGAL_INVISIBLE_TIME
    await harness.advance(1000)
    assert await recv(e) == []
    await harness.advance(1500)
    (again,) = await recv(e)
    assert again.delivery_attempt == 2 and bytes(again.message.body) == b"m0"


async def test_forward_to_dlq_acks_and_copies(harness) -> None:
    e = harness.engine
    await send(e, 2)
    d0, d1 = await recv(e)
    assert await e.forward_to_dlq(group=G, topic=TOPIC, receipt_handle=d0.receipt_handle) \
        is DlqStatus.OK
    assert await e.forward_to_dlq(group=G, topic="ns1%x", receipt_handle=d1.receipt_handle) \
        is DlqStatus.INVALID_HANDLE
    assert harness.store.queue_bounds(dlq_topic("ns1", "g1"), 0) == (0, 1)
    assert await e.ack(group=G, topic=TOPIC, receipt_handle=d1.receipt_handle) is AckStatus.OK
    assert e.committed_offset(G, TOPIC, 0) == 2


async def test_fifo_group_delivers_in_order_one_per_message_group(harness) -> None:
    e = harness.engine
    fifo = ConsumerGroup("ns1", "fifo", fifo=True, max_delivery_attempts=5)
    for i in range(3):
        await e.put(msg(i, **{PROP_MESSAGE_GROUP: "A"}))
    await e.put(msg(3, queue=1, **{PROP_MESSAGE_GROUP: "B"}))
    got = await recv(e, group=fifo, invisible_ms=1000)
    assert sorted(bodies(got)) == [b"m0", b"m3"]  # one of A (queue 0), one of B (queue 1)
    assert await recv(e, group=fifo) == []  # both queues locked while in flight
    a0 = next(d for d in got if d.message.body == b"m0")
    await harness.advance(1500)  # not acked: m0 must come again before m1
    again = await recv(e, group=fifo, invisible_ms=1000)
    assert b"m0" in bodies(again) and b"m1" not in bodies(again)
    assert next(d for d in again if d.message.body == b"m0").delivery_attempt == 2
    assert await e.ack(group=fifo, topic=TOPIC, receipt_handle=a0.receipt_handle) \
        is AckStatus.EXPIRED
    for d in again:
        assert await e.ack(group=fifo, topic=TOPIC, receipt_handle=d.receipt_handle) \
            is AckStatus.OK
    assert bodies(await recv(e, group=fifo)) == [b"m1"]


async def test_tag_and_sql_filters_skip_and_advance(harness) -> None:
    e = harness.engine
    await e.put(msg(0, tag="a"))
    await e.put(msg(1, tag="b", region="eu"))
    await e.put(msg(2, tag="c", region="us"))
    ga, gs = ConsumerGroup("ns1", "tags"), ConsumerGroup("ns1", "sql")
    got = await recv(e, group=ga, filter=compile_filter(FilterType.TAG, "a || c"))
    assert bodies(got) == [b"m0", b"m2"]
    for d in got:
        await e.ack(group=ga, topic=TOPIC, receipt_handle=d.receipt_handle)
    assert e.committed_offset(ga, TOPIC, 0) == 3  # the filtered-out entry does not hold it back
    got = await recv(e, group=gs, filter=compile_filter(FilterType.SQL,
                                                        "region = 'us' OR TAGS = 'a'"))
    assert bodies(got) == [b"m0", b"m2"]


async def test_broadcast_each_client_gets_everything(harness) -> None:
    e = harness.engine
    bc = ConsumerGroup("ns1", "bc", broadcast=True)
    e.register_consumer(group=bc, topic=TOPIC, client_id="x")
    e.register_consumer(group=bc, topic=TOPIC, client_id="y")
    harness.clock.advance(5)
    await send(e, 3)
    for client in ("x", "y"):
        got = await recv(e, group=bc, client=client)
        assert bodies(got) == [b"m0", b"m1", b"m2"]
        for d in got:
            assert await e.ack(group=bc, topic=TOPIC, receipt_handle=d.receipt_handle) \
                is AckStatus.OK
    clustering = ConsumerGroup("ns1", "cl")
    assert len(await recv(e, group=clustering, client="x")) == 3
    assert await recv(e, group=clustering, client="y") == []


async def test_broadcast_clients_gone_for_a_day_are_forgotten(harness) -> None:
    """SDK client ids change with every process: an idle broadcast client's cursors (and what
    it left in flight, which pinned retention) are dropped, durably; active clients keep theirs."""
    e = harness.engine
    bc = ConsumerGroup("ns1", "bc", broadcast=True)
    for client in ("gone", "alive"):
        e.register_consumer(group=bc, topic=TOPIC, client_id=client)
    harness.clock.advance(5)
    await send(e, 3)
    assert len(await recv(e, group=bc, client="gone")) == 3  # never acked: it crashed
    for d in await recv(e, group=bc, client="alive"):
        await e.ack(group=bc, topic=TOPIC, receipt_handle=d.receipt_handle)
    assert e.pin_offset() is not None  # the crashed client's deliveries hold retention back
    e = await harness.restart()  # both cursors and the in-flight batch are now on disk
    assert e.committed_offset(bc, TOPIC, 0, "gone") == 0 and e.pin_offset() is not None

    await harness.advance(12 * 3600 * 1000)
    assert await recv(e, group=bc, client="alive") == []  # seen again
    await harness.advance(13 * 3600 * 1000)  # "gone": idle 25 h; "alive": 13 h
    assert e.committed_offset(bc, TOPIC, 0, "gone") is None
    assert e.committed_offset(bc, TOPIC, 0, "alive") == 3
    assert e.pin_offset() is None

    e = await harness.restart()
    assert e.committed_offset(bc, TOPIC, 0, "gone") is None  # deleted from the state db too
    assert e.committed_offset(bc, TOPIC, 0, "alive") == 3


async def test_long_poll_wakes_on_put(harness) -> None:
    e = harness.engine
    waiter = asyncio.create_task(recv(e, long_poll_ms=5000))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await send(e, 1)
    got = await asyncio.wait_for(waiter, 2)
    assert bodies(got) == [b"m0"]
    assert await recv(e, long_poll_ms=50) == []


async def test_acks_and_inflight_survive_restart(harness) -> None:
    e = harness.engine
    await send(e, 4)
    ds = await recv(e, invisible_ms=5000)
    await e.ack(group=G, topic=TOPIC, receipt_handle=ds[0].receipt_handle)
    await e.ack(group=G, topic=TOPIC, receipt_handle=ds[2].receipt_handle)
    e = await harness.restart()
    assert await recv(e) == []  # still invisible after the restart
    assert await e.ack(group=G, topic=TOPIC, receipt_handle=ds[1].receipt_handle) is AckStatus.OK
    await harness.advance(6000)
    (d,) = await recv(e)
    assert bytes(d.message.body) == b"m3" and d.delivery_attempt == 2


async def test_auto_renew_keeps_invisible_until_release(harness) -> None:
    e = harness.engine
    await send(e, 1)
    (d,) = await recv(e, invisible_ms=None, client="push")
    await harness.advance(120_000)  # renewed, not redelivered
    await harness.advance(120_000)
    assert await recv(e) == []
    e.release_client("push")
    await harness.advance(1500)
    (again,) = await recv(e)
    assert again.delivery_attempt == 2


async def test_a_put_wakes_one_waiting_receive_of_the_group_not_all(harness) -> None:
    """As RocketMQ's long polling: one message, one woken receive per group; the others keep
    waiting instead of each looking (and returning empty) for every arrival."""
    e = harness.engine
    other = ConsumerGroup("ns1", "g2")
    waiting = [asyncio.create_task(recv(e, client=f"c{i}", long_poll_ms=5000)) for i in range(6)]
    elsewhere = asyncio.create_task(recv(e, group=other, long_poll_ms=5000))
    await asyncio.sleep(0.05)
    await send(e, 1)
    await asyncio.wait_for(elsewhere, 2)  # the other group's receive was woken too
    assert bodies(elsewhere.result()) == [b"m0"]
    await asyncio.sleep(0.05)
    done = [t for t in waiting if t.done()]
    assert len(done) == 1 and bodies(done[0].result()) == [b"m0"]
    assert e._notifier.waiting(TOPIC, (G.key, "")) == 5  # noqa: SLF001
    await send(e, 1, start=1)
    await asyncio.sleep(0.05)
    assert sum(t.done() for t in waiting) == 2
    for t in waiting:
        t.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def test_a_burst_reaches_as_many_waiting_receives_as_it_needs(harness) -> None:
    """A receive that fills its batch passes the wake-up on, so a burst larger than one batch
    is spread over the waiting receives; each message goes out once."""
    e = harness.engine
    waiting = [asyncio.create_task(recv(e, n=2, client=f"c{i}", long_poll_ms=5000))
               for i in range(5)]
    await asyncio.sleep(0.05)
    assert (await e.put_many([msg(i) for i in range(7)]))  # one notification for all seven
    got = await asyncio.wait_for(asyncio.gather(*waiting[:4]), 2)
    assert sorted(b for ds in got for b in bodies(ds)) == [f"m{i}".encode() for i in range(7)]
    assert sorted(len(ds) for ds in got) == [1, 2, 2, 2]
    assert not waiting[4].done()  # the batch of one left nothing: the chain stopped there
    waiting[4].cancel()
    await asyncio.gather(waiting[4], return_exceptions=True)


async def test_broadcast_clients_are_each_woken(harness) -> None:
    e = harness.engine
    bc = ConsumerGroup("ns1", "bc", broadcast=True)
    for client in ("x", "y"):
        e.register_consumer(group=bc, topic=TOPIC, client_id=client)
    harness.clock.advance(5)
    waiting = [asyncio.create_task(recv(e, group=bc, client=c, long_poll_ms=5000))
               for c in ("x", "y")]
    await asyncio.sleep(0.05)
    await send(e, 1)
    got = await asyncio.wait_for(asyncio.gather(*waiting), 2)
    assert [bodies(ds) for ds in got] == [[b"m0"], [b"m0"]]


async def test_a_woken_receive_of_another_queue_passes_the_wake_up_on(harness) -> None:
    """Receives of one group that each look at one queue: the message on queue 1 reaches the
    receive of queue 1 at once, although the receive of queue 0 waited longer."""
    e = harness.engine
    on_0 = asyncio.create_task(recv(e, client="c0", queue_id=0, long_poll_ms=5000))
    await asyncio.sleep(0.02)
    on_1 = asyncio.create_task(recv(e, client="c1", queue_id=1, long_poll_ms=5000))
    await asyncio.sleep(0.02)
    await send(e, 1, queue=1)  # wakes the oldest waiter first: the one on queue 0
    got = await asyncio.wait_for(on_1, 2)
    assert bodies(got) == [b"m0"]
    assert not on_0.done()
    on_0.cancel()
    await asyncio.gather(on_0, return_exceptions=True)
