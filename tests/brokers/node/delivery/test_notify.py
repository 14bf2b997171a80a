"""Long-poll wake-ups: one waiting receive per consumer per notification (notify.py)."""

from __future__ import annotations

import asyncio

import pytest

from brokers.node.delivery.notify import TopicNotifier

T = "ns%t"


async def _waiting(n: TopicNotifier, key: object, count: int, timeout: float = 5
                   ) -> list[asyncio.Task[bool]]:
    tasks = [asyncio.create_task(n.wait(T, n.version(T), timeout, key)) for _ in range(count)]
    await asyncio.sleep(0)
    assert n.waiting(T, key) == count
    return tasks


async def test_notify_wakes_the_oldest_waiter_of_each_key_only() -> None:
    n = TopicNotifier()
    a = await _waiting(n, "g1", 3)
    b = await _waiting(n, "g2", 2)
    n.notify(T)
    await asyncio.sleep(0)
    assert [t.done() for t in a] == [True, False, False]
    assert [t.done() for t in b] == [True, False]
    assert a[0].result() is True and b[0].result() is True
    assert n.waiting(T, "g1") == 2 and n.waiting(T, "g2") == 1
    n.pass_on(T, "g1")
    await asyncio.sleep(0)
    assert [t.done() for t in a] == [True, True, False]
    n.notify_all()
    await asyncio.gather(*a, *b)
    assert n.waiting(T, "g1") == n.waiting(T, "g2") == 0


async def test_timeout_returns_false_and_leaves_no_waiter() -> None:
    n = TopicNotifier()
    assert await n.wait(T, n.version(T), 0.02, "g") is False
    assert n.waiting(T, "g") == 0
    assert await n.wait(T, n.version(T), 0, "g") is False


async def test_a_notification_before_the_wait_is_not_lost() -> None:
    n = TopicNotifier()
    seen = n.version(T)
    n.notify(T)  # lands between the caller's look and its wait
    assert await asyncio.wait_for(n.wait(T, seen, 5, "g"), 1) is True


async def test_a_woken_waiter_cancelled_before_it_looked_passes_the_wake_up_on() -> None:
    n = TopicNotifier()
    first, second = await _waiting(n, "g", 2)
    n.notify(T)  # wakes `first`...
    first.cancel()  # ...whose client goes away before its task runs
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) is True
    assert n.waiting(T, "g") == 0


async def test_a_cancelled_waiter_that_was_not_woken_takes_nothing_with_it() -> None:
    n = TopicNotifier()
    first, second = await _waiting(n, "g", 2)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert n.waiting(T, "g") == 1
    n.notify(T)
    assert await asyncio.wait_for(second, 1) is True


async def test_a_wake_up_is_passed_only_to_receives_waiting_before_the_notification() -> None:
    """A chain of pass_on ends after each earlier waiter looked once: a receive that waits
    again after its look is not woken by the same notification (no ping-pong)."""
    n = TopicNotifier()
    first, second = await _waiting(n, "g", 2)
    n.notify(T)
    assert await first is True
    again = asyncio.create_task(n.wait(T, n.version(T), 5, "g"))  # looked, found nothing
    await asyncio.sleep(0)
    n.pass_on(T, "g")
    assert await asyncio.wait_for(second, 1) is True
    n.pass_on(T, "g")  # nobody is left from before the notification
    await asyncio.sleep(0.01)
    assert not again.done() and n.waiting(T, "g") == 1
    n.notify(T)
    assert await asyncio.wait_for(again, 1) is True
