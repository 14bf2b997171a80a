"""Wake-ups for long polling: a version counter and an event per topic."""

from __future__ import annotations

import asyncio
import contextlib


class TopicNotifier:
    """``notify(topic)`` wakes every ``wait(topic, seen_version, ...)`` that started before it.

    Callers read ``version(topic)`` before looking for messages and pass it to ``wait``, so a
    notification that lands between the look and the wait is never lost.
    """

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._events: dict[str, asyncio.Event] = {}

    def version(self, topic: str) -> int:
        return self._versions.get(topic, 0)

    def notify(self, topic: str) -> None:
        self._versions[topic] = self._versions.get(topic, 0) + 1
        event = self._events.pop(topic, None)
        if event is not None:
            event.set()

    def notify_all(self) -> None:
        for topic in list(self._events):
            self.notify(topic)

    async def wait(self, topic: str, seen_version: int, timeout_s: float) -> None:
        """Return when ``topic`` was notified after ``seen_version`` or ``timeout_s`` passed."""
        if self.version(topic) != seen_version or timeout_s <= 0:
            return
        event = self._events.get(topic)
        if event is None:
            event = self._events[topic] = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout_s)
