"""Wake-ups for long polling: a version counter per topic and, per waiting consumer, a queue of
waiting receives.

A notification wakes **one** waiting receive per consumer of the topic (a consumer is a group,
or a group and client for broadcast groups), as Apache RocketMQ's long polling wakes one
suspended pop per arrival: waking every waiter made each message cost a look by every waiting
receive. A woken receive passes the wake-up on (``pass_on``) when it filled its whole batch
(more may be left), or found nothing while looking at one queue only (the message may be on
another); one that takes less than its batch took everything there was. A woken
receive that is cancelled before it could look passes its wake-up on too. A wake-up is only
passed to receives that were already waiting when the notification came, so a chain ends
after each of them looked once.

Callers read ``version(topic)`` before looking for messages and pass it to ``wait``, so a
notification that lands between the look and the wait is never lost.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Hashable

WaitKey = Hashable  # who a wake-up is for: one waiting receive per key is woken per notify


class TopicNotifier:
    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        # topic -> key -> the waiting receives (future, version seen when it started to wait),
        # oldest first, so the versions never decrease along a queue
        self._waiters: dict[str, dict[WaitKey, deque[tuple[asyncio.Future[bool], int]]]] = {}

    def version(self, topic: str) -> int:
        return self._versions.get(topic, 0)

    def notify(self, topic: str) -> None:
        """Something may be deliverable on ``topic``: wake one waiting receive per key."""
        self._versions[topic] = self._versions.get(topic, 0) + 1
        by_key = self._waiters.get(topic)
        if by_key:
            for key in list(by_key):
                self._wake_one(topic, key)

    def notify_all(self) -> None:
        """Wake every waiting receive (stopping, or the state changed under them)."""
        for topic, by_key in list(self._waiters.items()):
            self._versions[topic] = self._versions.get(topic, 0) + 1
            for waiters in by_key.values():
                for fut, _seen in waiters:
                    if not fut.done():
                        fut.set_result(True)
            del self._waiters[topic]

    def pass_on(self, topic: str, key: WaitKey) -> None:
        """Wake the next receive of ``key`` that was waiting before the latest notification of
        ``topic``, if any (see the module docstring)."""
        self._wake_one(topic, key)

    def waiting(self, topic: str, key: WaitKey) -> int:
        """How many receives of ``key`` wait on ``topic`` (for tests and metrics)."""
        by_key = self._waiters.get(topic)
        return len(by_key.get(key, ())) if by_key else 0

    async def wait(self, topic: str, seen_version: int, timeout_s: float, key: WaitKey) -> bool:
        """Return when this receive is woken, after ``timeout_s``, or at once when ``topic`` was
        notified after ``seen_version``; True unless the time ran out."""
        if self.version(topic) != seen_version:
            return True
        if timeout_s <= 0:
            return False
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()  # True: woken, False: timed out
        waiters = self._waiters.setdefault(topic, {}).setdefault(key, deque())
        entry = (fut, seen_version)
        waiters.append(entry)
        timer = loop.call_later(timeout_s, _expire, fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result():
                self.pass_on(topic, key)  # woken, but gone before looking: let another look
            raise
        finally:
            timer.cancel()
            self._forget(topic, key, entry)
        return fut.result()

    def _wake_one(self, topic: str, key: WaitKey) -> None:
        waiters = self._queue(topic, key)
        if not waiters:
            return
        version = self.version(topic)
        while waiters and waiters[0][1] < version:  # waiting since before that notification
            fut = waiters.popleft()[0]
            if not fut.done():
                fut.set_result(True)
                break
        self._drop_if_empty(topic, key, waiters)

    def _forget(self, topic: str, key: WaitKey,
                entry: tuple[asyncio.Future[bool], int]) -> None:
        waiters = self._queue(topic, key)
        if not waiters:
            return
        try:
            waiters.remove(entry)
        except ValueError:
            return  # already taken off by a wake-up
        self._drop_if_empty(topic, key, waiters)

    def _queue(self, topic: str, key: WaitKey) -> deque[tuple[asyncio.Future[bool], int]] | None:
        by_key = self._waiters.get(topic)
        return by_key.get(key) if by_key else None

    def _drop_if_empty(self, topic: str, key: WaitKey,
                       waiters: deque[tuple[asyncio.Future[bool], int]]) -> None:
        if not waiters:
            by_key = self._waiters[topic]
            del by_key[key]
            if not by_key:
                del self._waiters[topic]


def _expire(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(False)
