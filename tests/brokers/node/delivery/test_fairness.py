"""More receivers than queues on a backlog: every receiver is served, none sleeps out its long
poll while messages are waiting (a busy cursor is a reason to retry, not to wait for a put)."""

from __future__ import annotations

import asyncio
import time

from brokers.node.delivery import ConsumerGroup
from brokers.node.store import NewMessage

TOPIC = "ns1%backlog"
G = ConsumerGroup("ns1", "g1")
QUEUES = 4


async def _fill(engine, n: int) -> None:
    msgs = [NewMessage(topic=TOPIC, queue_id=i % QUEUES, body=f"m{i}".encode())
            for i in range(n)]
    for i in range(0, n, 256):
        assert all(r.ok for r in await engine.put_many(msgs[i:i + 256]))


async def _recv(engine, client: str, long_poll_ms: int = 20_000):
    return await engine.receive(group=G, topic=TOPIC, client_id=client, max_messages=32,
                                invisible_ms=60_000, long_poll_ms=long_poll_ms)


async def test_eight_concurrent_receives_on_four_queues_all_get_backlog(harness) -> None:
    e = harness.engine
    await _fill(e, 2000)
    t0 = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(*(_recv(e, f"c{i}") for i in range(8))), 15)
    # The long poll is 20 s: a receiver that waited for a put would have timed out above.
    assert time.monotonic() - t0 < 15
    assert all(results), [len(r) for r in results]
    offsets = [(d.message.queue_id, d.message.queue_offset) for r in results for d in r]
    assert len(offsets) == len(set(offsets))  # no double delivery


async def test_eight_receive_loops_drain_backlog_without_long_poll_stalls(harness) -> None:
    e = harness.engine
    total = 3000
    await _fill(e, total)
    seen: set[tuple[int, int]] = set()
    empty = 0

    async def loop(client: str) -> None:
        nonlocal empty
        while len(seen) < total:
            got = await _recv(e, client, long_poll_ms=2_000)
            if not got:
                empty += 1
            for d in got:
                key = (d.message.queue_id, d.message.queue_offset)
                assert key not in seen
                seen.add(key)
                await e.ack(group=G, topic=TOPIC, receipt_handle=d.receipt_handle)

    # 3000 messages in ~100 batches: with stalls of a 2 s long poll this takes minutes.
    await asyncio.wait_for(asyncio.gather(*(loop(f"c{i}") for i in range(8))), 60)
    assert len(seen) == total
    # Receivers only come back empty at the very end (backlog drained while they polled).
    assert empty <= 8


async def test_receivers_skipping_a_busy_queue_retry_when_it_is_released(harness) -> None:
    """The whole backlog sits in one queue: receives that find it busy must not wait for a put
    but take their turn as soon as the reader before them releases it."""
    e = harness.engine
    for i in range(0, 200, 50):
        assert all(r.ok for r in await e.put_many(
            [NewMessage(topic=TOPIC, queue_id=0, body=f"m{j}".encode())
             for j in range(i, i + 50)]))
    for q in range(1, QUEUES):  # the other queues exist but are empty
        assert (await e.put(NewMessage(topic=TOPIC, queue_id=q, body=b"x"))).ok
    results = await asyncio.wait_for(
        asyncio.gather(*(_recv(e, f"c{i}") for i in range(6))), 15)
    assert all(results), [len(r) for r in results]
    offsets = [(d.message.queue_id, d.message.queue_offset) for r in results for d in r]
    assert len(offsets) == len(set(offsets))
