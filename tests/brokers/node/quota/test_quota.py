"""Token buckets and namespace quotas with a fake clock."""

from __future__ import annotations

from brokers.node.config import parse_desired_state
from brokers.node.quota import QuotaManager, QuotaVerdict, TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_refills_at_rate_and_caps_at_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10, clock)
    assert all(bucket.try_take() for _ in range(10))
    assert not bucket.try_take()
    clock.now += 0.5
    assert bucket.try_take(5) and not bucket.try_take()
    clock.now += 100
    assert bucket.available == 10
    bucket.charge(15)
    assert bucket.available == -5


def _manager(usage: int = 0) -> tuple[QuotaManager, FakeClock]:
    clock = FakeClock()
    m = QuotaManager(clock, lambda ns: usage)
    m.apply(parse_desired_state({"version": 1, "namespaces": {
        "n": {"quotas": {"send_tps": 2, "receive_tps": 1, "max_message_bytes": 10,
                         "storage_bytes": 100}},
        "free": {},
    }}))
    return m, clock


def test_send_quota_order_size_storage_rate() -> None:
    m, clock = _manager()
    too_big = m.check_send("n", [11])
    assert too_big.verdict is QuotaVerdict.TOO_LARGE and "10 bytes" in too_big.detail
    assert m.check_send("n", [5, 5]).verdict is QuotaVerdict.OK
    assert m.check_send("n", [5]).verdict is QuotaVerdict.THROTTLED
    clock.now += 1
    assert m.check_send("n", [5]).verdict is QuotaVerdict.OK
    assert m.check_send("free", [10**6] * 300).verdict is QuotaVerdict.OK  # defaults: 4 MiB


def test_storage_cap() -> None:
    m, _ = _manager(usage=95)
    assert m.check_send("n", [6]).verdict is QuotaVerdict.STORAGE_FULL


def test_receive_debt_is_repaid_over_time() -> None:
    m, clock = _manager()
    assert m.check_receive("n").verdict is QuotaVerdict.OK
    m.charge_receive("n", 3)
    assert m.check_receive("n").verdict is QuotaVerdict.THROTTLED
    clock.now += 3
    assert m.check_receive("n").verdict is QuotaVerdict.OK
