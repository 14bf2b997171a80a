"""The official Python SDK against a real node process: PushConsumer retries, FIFO, transactions
(with check-back), broadcast vs clustering, max attempts -> DLQ, and state that must survive a
restart of the node process (delay timers, half messages).

Durations are shortened through the desired state (retry backoff, max attempts) and through
``MQ_DELIVERY_*`` environment overrides of ``DeliveryConfig`` so the suite stays quick.
"""

from __future__ import annotations

import copy
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from rocketmq import (
    ConsumeResult,
    FilterExpression,
    Message,
    MessageListener,
    Producer,
    PushConsumer,
    SimpleConsumer,
    TransactionChecker,
    TransactionResolution,
)

from ..conftest import ALL_ACCESS, PYTHON, REPO, NodeHandle, _wait_healthy, default_state

pytestmark = pytest.mark.slow

FAST_ENV = {
    "MQ_DELIVERY_TRANSACTION_CHECK_AFTER_MS": "1000",
    "MQ_DELIVERY_TRANSACTION_CHECK_INTERVAL_MS": "1000",
    "MQ_DELIVERY_TRANSACTION_CHECK_MAX_INTERVAL_MS": "1000",
    "MQ_DELIVERY_TICK_MS": "50",
}


def _state() -> dict[str, Any]:
    state = default_state()
    groups = state["namespaces"]["ns1"]["groups"]
    groups["g-retry"] = {"max_delivery_attempts": 5, "retry_backoff": {"next_s": [1]}}
    groups["g-dlq"] = {"max_delivery_attempts": 2, "retry_backoff": {"next_s": [1]}}
    groups["g-bcast"] = {"delivery": "broadcast"}
    groups["g-fifo-dlq"] = {"fifo": True, "max_delivery_attempts": 2,
                            "retry_backoff": {"next_s": [1]}}
    return state


def _msg(topic: str, body: bytes, group: str = "") -> Message:
    m = Message()
    m.topic = topic
    m.body = body
    if group:
        m.message_group = group
    return m


def _drain(consumer: SimpleConsumer, want: int, timeout: float = 15, invisible: int = 15,
           ack: bool = True) -> list:
    got: list = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        batch = consumer.receive(32, invisible)
        got.extend(batch)
        if ack:
            for m in batch:
                consumer.ack(m)
    return got


def _restart(node: NodeHandle, env: dict[str, str]) -> NodeHandle:
    """Stop the node process and start it again on the same data dir, state file and ports."""
    assert node.stop() == 0
    args = [PYTHON, "-m", "brokers.node", "--state-file", str(node.state_file),
            "--data-dir", str(node.data_dir), "--grpc-port", str(node.grpc_port),
            "--metrics-port", str(node.metrics_port), "--durability", "async",
            "--segment-bytes", str(64 * 1024 * 1024)]
    import os

    with node.log_file.open("ab") as log:
        process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **env})
    again = NodeHandle(process, node.grpc_port, node.metrics_port, node.state_file,
                       node.data_dir, node.log_file, state=node.state)
    _wait_healthy(again)
    return again


@pytest.fixture
def fast_node(start_node: Callable[..., NodeHandle]) -> NodeHandle:
    return start_node(_state(), env=FAST_ENV)


# ----------------------------------------------------------------------------- PushConsumer


def test_push_consumer_failing_listener_is_retried_with_backoff(fast_node: NodeHandle) -> None:
    cfg = fast_node.client_config(*ALL_ACCESS)
    calls: dict[bytes, list[tuple[int, float]]] = defaultdict(list)
    done = threading.Event()

    class Listener(MessageListener):
        def consume(self, message: Message) -> ConsumeResult:
            calls[message.body].append((message.delivery_attempt, time.monotonic()))
            if message.body == b"flaky" and len(calls[b"flaky"]) < 3:
                return ConsumeResult.FAILURE
            if len(calls[b"flaky"]) >= 3 and calls[b"fine"]:
                done.set()
            return ConsumeResult.SUCCESS

    consumer = PushConsumer(cfg, "g-retry", Listener(), {"orders": FilterExpression()})
    consumer.startup()
    producer = Producer(cfg, ("orders",))
    producer.startup()
    try:
        producer.send(_msg("orders", b"fine"))
        producer.send(_msg("orders", b"flaky"))
        assert done.wait(30), dict(calls)
        time.sleep(1.0)  # an acked message is not delivered again
        assert [a for a, _ in calls[b"fine"]] == [1]
        flaky = calls[b"flaky"]
        assert [a for a, _ in flaky] == [1, 2, 3]
        # The group's backoff (1 s) separates the attempts (generous lower bound).
        assert all(b[1] - a[1] >= 0.7 for a, b in zip(flaky, flaky[1:]))
    finally:
        producer.shutdown()
        consumer.shutdown()


# ----------------------------------------------------------------------------- FIFO


def test_fifo_group_order_one_in_flight_per_group_and_queues_spread(fast_node: NodeHandle) -> None:
    cfg = fast_node.client_config(*ALL_ACCESS)
    producer = Producer(cfg, ("fifo-orders",))
    producer.startup()
    consumer = SimpleConsumer(cfg, "g-fifo", {"fifo-orders": FilterExpression()},
                              await_duration=1)
    consumer.startup()
    groups = [f"order-{i}" for i in range(5)]
    queues: dict[str, set[int]] = defaultdict(set)
    try:
        for n in range(3):
            for g in groups:
                receipt = producer.send(_msg("fifo-orders", f"{g}:{n}".encode(), group=g))
                queues[g].add(int(str(receipt.message_queue).rsplit(".", 1)[1]))
        # Each message group sticks to one queue; five groups use more than one of the 4 queues.
        assert all(len(q) == 1 for q in queues.values())
        assert len({next(iter(q)) for q in queues.values()}) > 1

        seen: dict[str, list[int]] = defaultdict(list)
        deadline = time.monotonic() + 40
        total = 3 * len(groups)
        while sum(map(len, seen.values())) < total and time.monotonic() < deadline:
            held = consumer.receive(32, 10)
            held_groups = [m.message_group for m in held]
            # Never two messages of one group in flight at once.
            assert len(held_groups) == len(set(held_groups))
            # While these are unacked, a second receive gets none of their groups.
            for m in consumer.receive(32, 10):
                assert m.message_group not in held_groups
                held.append(m)
            for m in held:
                g, n = m.body.decode().split(":")
                seen[g].append(int(n))
            for m in reversed(held):  # ack out of order: order must still hold
                consumer.ack(m)
        assert {g: seen[g] for g in groups} == {g: [0, 1, 2] for g in groups}
    finally:
        consumer.shutdown()
        producer.shutdown()


def test_fifo_push_consumer_consumes_each_group_in_order(fast_node: NodeHandle) -> None:
    cfg = fast_node.client_config(*ALL_ACCESS)
    seen: dict[str, list[int]] = defaultdict(list)
    lock = threading.Lock()
    done = threading.Event()

    class Listener(MessageListener):
        def consume(self, message: Message) -> ConsumeResult:
            g, n = message.body.decode().split(":")
            with lock:
                seen[g].append(int(n))
                if sum(map(len, seen.values())) >= 15:
                    done.set()
            return ConsumeResult.SUCCESS

    producer = Producer(cfg, ("fifo-orders",))
    producer.startup()
    for n in range(5):
        for g in ("a", "b", "c"):
            producer.send(_msg("fifo-orders", f"{g}:{n}".encode(), group=g))
    consumer = PushConsumer(cfg, "g-fifo", Listener(), {"fifo-orders": FilterExpression()})
    consumer.startup()
    try:
        assert done.wait(30), dict(seen)
        assert dict(seen) == {g: [0, 1, 2, 3, 4] for g in ("a", "b", "c")}
    finally:
        consumer.shutdown()
        producer.shutdown()


def test_fifo_push_listener_failing_forwards_to_dlq_and_unblocks_group(
        fast_node: NodeHandle) -> None:
    """The SDK retries a failing FIFO message locally (max attempts from the group), then calls
    ForwardMessageToDeadLetterQueue; the next message of the group is consumed after it."""
    cfg = fast_node.client_config(*ALL_ACCESS)
    calls: list[bytes] = []
    done = threading.Event()

    class Listener(MessageListener):
        def consume(self, message: Message) -> ConsumeResult:
            calls.append(message.body)
            if message.body == b"bad":
                return ConsumeResult.FAILURE
            if message.body == b"after":
                done.set()
            return ConsumeResult.SUCCESS

    producer = Producer(cfg, ("fifo-orders",))
    producer.startup()
    for body in (b"before", b"bad", b"after"):
        producer.send(_msg("fifo-orders", body, group="k"))
    consumer = PushConsumer(cfg, "g-fifo-dlq", Listener(), {"fifo-orders": FilterExpression()})
    consumer.startup()
    dlq = SimpleConsumer(cfg, "g1", {"%DLQ%g-fifo-dlq": FilterExpression()}, await_duration=2)
    try:
        assert done.wait(30), calls
        assert calls == [b"before", b"bad", b"bad", b"after"]
        dlq.startup()
        dead = _drain(dlq, 1, timeout=10)
        assert [(m.body, m.topic) for m in dead] == [(b"bad", "%DLQ%g-fifo-dlq")]
    finally:
        dlq.shutdown()
        consumer.shutdown()
        producer.shutdown()


# ----------------------------------------------------------------------------- transactions


class _ByBody(TransactionChecker):
    def __init__(self, strip: bytes = b"") -> None:
        self.checked: list[bytes] = []
        self.strip = strip

    def check(self, message: Message) -> TransactionResolution:
        body = message.body.removeprefix(self.strip) if self.strip else message.body
        self.checked.append(body)
        if body.startswith(b"commit"):
            return TransactionResolution.COMMIT
        if body.startswith(b"rollback"):
            return TransactionResolution.ROLLBACK
        return TransactionResolution.UNKNOWN


def test_transaction_half_invisible_until_commit_and_checked_back(fast_node: NodeHandle) -> None:
    cfg = fast_node.client_config(*ALL_ACCESS)
    checker = _ByBody()
    producer = Producer(cfg, ("txn",), checker=checker)
    producer.startup()
    consumer = SimpleConsumer(cfg, "g1", {"txn": FilterExpression()}, await_duration=1)
    consumer.startup()
    try:
        tx = producer.begin_transaction()
        producer.send(_msg("txn", b"explicit"), tx)
        assert consumer.receive(32, 10) == []  # half: invisible
        tx.commit()
        got = _drain(consumer, 1, timeout=10)
        assert [m.body for m in got] == [b"explicit"]

        tx = producer.begin_transaction()
        producer.send(_msg("txn", b"dropped"), tx)
        tx.rollback()
        # Orphans: never resolved by the producer; the node asks its checker.
        for body in (b"commit-me", b"rollback-me"):
            producer.send(_msg("txn", body), producer.begin_transaction())
        got = _drain(consumer, 1, timeout=20)
        assert [m.body for m in got] == [b"commit-me"]
        assert _wait_for(lambda: {b"commit-me", b"rollback-me"} <= set(checker.checked))
        assert b"dropped" not in checker.checked
        assert consumer.receive(32, 10) == []  # the rolled-back ones never show up (1 s poll)
    finally:
        consumer.shutdown()
        producer.shutdown()


def test_unresolved_half_survives_restart_and_is_resolved_by_check(
        start_node: Callable[..., NodeHandle]) -> None:
    node = start_node(_state(), env=FAST_ENV)
    cfg = node.client_config(*ALL_ACCESS)
    producer = Producer(cfg, ("txn",), checker=_ByBody())  # answers UNKNOWN to everything
    producer.startup()
    producer.send(_msg("txn", b"unknown:commit-after-restart"), producer.begin_transaction())
    producer.send(_msg("txn", b"unknown:rollback-after-restart"), producer.begin_transaction())
    time.sleep(1.5)  # checked at least once before the restart (answer: UNKNOWN)
    producer.shutdown()
    node = _restart(node, FAST_ENV)
    try:
        checker = _ByBody(strip=b"unknown:")
        producer = Producer(cfg, ("txn",), checker=checker)
        producer.startup()
        consumer = SimpleConsumer(cfg, "g1", {"txn": FilterExpression()}, await_duration=1)
        consumer.startup()
        try:
            got = _drain(consumer, 1, timeout=20)
            assert [m.body for m in got] == [b"unknown:commit-after-restart"]
            assert _wait_for(lambda: b"rollback-after-restart" in checker.checked)
            assert consumer.receive(32, 10) == []
        finally:
            consumer.shutdown()
            producer.shutdown()
    finally:
        node.stop()


def _wait_for(cond: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


# ----------------------------------------------------------------------------- broadcast


def test_broadcast_every_consumer_gets_everything_clustering_splits(fast_node: NodeHandle) -> None:
    cfg = fast_node.client_config(*ALL_ACCESS)
    producer = Producer(cfg, ("orders",))
    producer.startup()
    consumers = {g: [SimpleConsumer(cfg, g, {"orders": FilterExpression()}, await_duration=1)
                     for _ in range(2)] for g in ("g-bcast", "g1")}
    for pair in consumers.values():
        for c in pair:
            c.startup()
    try:
        time.sleep(0.5)  # broadcast clients start at "now" (first Settings): be seen first
        bodies = [b"b%d" % i for i in range(12)]
        for b in bodies:
            producer.send(_msg("orders", b))
        for c in consumers["g-bcast"]:
            got = _drain(c, len(bodies), timeout=15)
            assert sorted(m.body for m in got) == sorted(bodies)
        shares = [[] for _ in range(2)]
        deadline = time.monotonic() + 15
        while sum(map(len, shares)) < len(bodies) and time.monotonic() < deadline:
            for share, c in zip(shares, consumers["g1"]):
                batch = c.receive(4, 15)
                for m in batch:
                    c.ack(m)
                share.extend(m.body for m in batch)
        # Clustering: each message to exactly one of the two consumers.
        assert sorted(shares[0] + shares[1]) == sorted(bodies)
        assert not set(shares[0]) & set(shares[1])
    finally:
        for pair in consumers.values():
            for c in pair:
                c.shutdown()
        producer.shutdown()


# ----------------------------------------------------------------------------- DLQ, invisibility


def test_change_invisible_then_max_attempts_moves_to_dlq(fast_node: NodeHandle) -> None:
    cfg = fast_node.client_config(*ALL_ACCESS)
    producer = Producer(cfg, ("orders",))
    producer.startup()
    consumer = SimpleConsumer(cfg, "g-dlq", {"orders": FilterExpression()}, await_duration=2)
    consumer.startup()
    dlq = SimpleConsumer(cfg, "g1", {"%DLQ%g-dlq": FilterExpression()}, await_duration=2)
    try:
        producer.send(_msg("orders", b"poison"))
        first = _drain(consumer, 1, invisible=30, ack=False)
        assert [(m.body, m.delivery_attempt) for m in first] == [(b"poison", 1)]
        # Shorten the 30 s invisibility to 1 s: it comes back soon, as attempt 2.
        consumer.change_invisible_duration(first[0], 1)
        second = _drain(consumer, 1, timeout=10, invisible=1, ack=False)
        assert [(m.body, m.delivery_attempt) for m in second] == [(b"poison", 2)]
        # Attempt 2 of 2 expires unacked (1 s, inside this 2 s long poll): the message goes to
        # %DLQ%g-dlq, not to g-dlq again.
        assert consumer.receive(32, 10) == []
        dlq.startup()
        dead = _drain(dlq, 1, timeout=10)
        assert [(m.body, m.topic) for m in dead] == [(b"poison", "%DLQ%g-dlq")]
        assert dead[0].delivery_attempt == 1
    finally:
        dlq.shutdown()
        consumer.shutdown()
        producer.shutdown()


# ----------------------------------------------------------------------------- restart


def test_delay_survives_node_restart(start_node: Callable[..., NodeHandle]) -> None:
    node = start_node(copy.deepcopy(_state()), env=FAST_ENV)
    cfg = node.client_config(*ALL_ACCESS)
    producer = Producer(cfg, ("delayed",))
    producer.startup()
    due = int(time.time()) + 4
    m = _msg("delayed", b"after-restart")
    m.delivery_timestamp = due
    producer.send(m)
    producer.shutdown()
    node = _restart(node, FAST_ENV)
    try:
        consumer = SimpleConsumer(cfg, "g1", {"delayed": FilterExpression()}, await_duration=2)
        consumer.startup()
        try:
            got = _drain(consumer, 1, timeout=20)
            assert [m.body for m in got] == [b"after-restart"]
            assert time.time() >= due - 0.5
        finally:
            consumer.shutdown()
    finally:
        node.stop()
