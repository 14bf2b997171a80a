"""Token bucket with an injected monotonic clock (sans-io)."""

from __future__ import annotations

from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, holding at most ``burst`` (default: one second's worth).

    ``try_take`` is all-or-nothing; ``charge`` takes unconditionally and may leave a debt that
    later refills repay (used when the exact cost is only known after the work, e.g. a receive).
    """

    __slots__ = ("rate", "burst", "_clock", "_tokens", "_stamp")

    def __init__(self, rate: float, clock: Callable[[], float], burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._stamp = now

    def try_take(self, n: float = 1.0) -> bool:
        self._refill()
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False

    def charge(self, n: float) -> None:
        self._refill()
        self._tokens -= n

    @property
    def available(self) -> float:
        self._refill()
        return self._tokens
