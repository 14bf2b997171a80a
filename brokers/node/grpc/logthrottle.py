"""Rate-limited warnings, so a flood of refused requests cannot turn into a flood of log lines."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class LogThrottle:
    """At most ``per_second`` records per key per second; says how many were suppressed."""

    def __init__(self, logger: logging.Logger, per_second: int = 5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger = logger
        self._per_second = per_second
        self._clock = clock
        self._window: dict[str, tuple[int, int, int]] = {}  # key -> (second, emitted, dropped)

    def warning(self, key: str, msg: str, *args: object) -> None:
        now = int(self._clock())
        second, emitted, dropped = self._window.get(key, (now, 0, 0))
        if second != now:
            if dropped:
                self._logger.warning("[%s] %d similar message(s) suppressed", key, dropped)
            second, emitted, dropped = now, 0, 0
        if emitted < self._per_second:
            self._logger.warning(msg, *args)
            emitted += 1
        else:
            dropped += 1
        if len(self._window) > 10_000:
            self._window.clear()
        self._window[key] = (second, emitted, dropped)
