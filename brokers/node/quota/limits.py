"""Per-namespace quota enforcement: send/receive TPS, message size, storage cap.

Rebuilt on each desired-state change (``apply``); buckets of namespaces whose rate did not change
keep their level so a reload cannot be used to reset a throttle.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from brokers.node.config.state import DesiredState, Quotas

from .bucket import TokenBucket


class QuotaVerdict(enum.Enum):
    OK = "ok"
    THROTTLED = "throttled"  # -> TOO_MANY_REQUESTS 42900
    TOO_LARGE = "too_large"  # -> MESSAGE_BODY_TOO_LARGE 41301
    STORAGE_FULL = "storage_full"  # -> PAYMENT_REQUIRED 40200


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    verdict: QuotaVerdict
    detail: str = ""


_OK = QuotaDecision(QuotaVerdict.OK)


class QuotaManager:
    """Owns one send and one receive bucket per namespace. Not thread-safe (one event loop)."""

    def __init__(self, clock: Callable[[], float], storage_usage: Callable[[str], int]) -> None:
        self._clock = clock
        self._storage_usage = storage_usage
        self._quotas: dict[str, Quotas] = {}
        self._send: dict[str, TokenBucket] = {}
        self._recv: dict[str, TokenBucket] = {}

    def apply(self, state: DesiredState) -> None:
        quotas = {name: ns.quotas for name, ns in state.namespaces.items()}
        self._send = self._rebuild(self._send, {n: q.send_tps for n, q in quotas.items()})
        self._recv = self._rebuild(self._recv, {n: q.receive_tps for n, q in quotas.items()})
        self._quotas = quotas

    def _rebuild(
        self, old: dict[str, TokenBucket], rates: Mapping[str, float | None]
    ) -> dict[str, TokenBucket]:
        new: dict[str, TokenBucket] = {}
        for ns, rate in rates.items():
            if rate is None:
                continue
            bucket = old.get(ns)
            new[ns] = bucket if bucket is not None and bucket.rate == rate else TokenBucket(
                rate, self._clock
            )
        return new

    def check_send(self, namespace: str, sizes: list[int]) -> QuotaDecision:
        """Size, storage and TPS checks for one SendMessage carrying bodies of ``sizes``."""
        q = self._quotas.get(namespace)
        if q is None:
            return _OK
        biggest = max(sizes, default=0)
        if biggest > q.max_message_bytes:
            return QuotaDecision(
                QuotaVerdict.TOO_LARGE,
                f"message body of {biggest} bytes exceeds the limit of {q.max_message_bytes} bytes",
            )
        if q.storage_bytes is not None:
            used = self._storage_usage(namespace)
            if used + sum(sizes) > q.storage_bytes:
                return QuotaDecision(
                    QuotaVerdict.STORAGE_FULL,
                    f"storage quota of {q.storage_bytes} bytes exhausted ({used} bytes used)",
                )
        bucket = self._send.get(namespace)
        if bucket is not None and not bucket.try_take(len(sizes)):
            return QuotaDecision(
                QuotaVerdict.THROTTLED, f"send rate above the quota of {bucket.rate:g} msgs/s"
            )
        return _OK

    def check_receive(self, namespace: str) -> QuotaDecision:
        """Admit a receive if at least one token is available (cost charged afterwards)."""
        bucket = self._recv.get(namespace)
        if bucket is not None and bucket.available < 1:
            return QuotaDecision(
                QuotaVerdict.THROTTLED, f"receive rate above the quota of {bucket.rate:g} msgs/s"
            )
        return _OK

    def charge_receive(self, namespace: str, count: int) -> None:
        bucket = self._recv.get(namespace)
        if bucket is not None and count:
            bucket.charge(count)

    def max_message_bytes(self, namespace: str, default: int) -> int:
        q = self._quotas.get(namespace)
        return q.max_message_bytes if q is not None else default
