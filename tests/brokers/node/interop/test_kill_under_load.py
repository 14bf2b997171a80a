"""What an operator does to a broker: SIGKILL the node process (or one of its gRPC front-end
workers) while producers using the official Python SDK are sending, start it again, repeat. Every send the SDK reported as successful (the
node runs in ``sync`` durability: answered only after an fsync covering the message) must then be
consumed intact; messages whose send failed may or may not be there, but never half."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable

from rocketmq import Message, Producer, SimpleConsumer
from rocketmq.v5.model import FilterExpression

from tests.brokers.node.conftest import ALL_ACCESS, NodeHandle, child_pids, default_state

PRODUCERS = 4
KILLS = 5
ACKED_BEFORE_KILL = 200  # per round: the kill lands with sends in flight, not on an idle node


def _body(producer: int, seq: int) -> bytes:
    return f"p{producer}-{seq:06d}|".encode() + b"x" * 512


class _Sender(threading.Thread):
    """Sends numbered messages in a loop; remembers the bodies the SDK reported as sent."""

    def __init__(self, index: int, node: NodeHandle, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.index, self.stop_event = index, stop
        self.acked: list[bytes] = []
        self.failures = 0
        self.producer = Producer(node.client_config(*ALL_ACCESS, request_timeout=2), ("orders",))

    def run(self) -> None:
        seq = 0
        while not self.stop_event.is_set():
            msg = Message()
            msg.topic, msg.body, msg.tag = "orders", _body(self.index, seq), "kill"
            seq += 1
            try:
                self.producer.send(msg)
            except Exception:  # noqa: BLE001 - the node is down: that send is simply not acked
                self.failures += 1
                time.sleep(0.05)
                continue
            self.acked.append(msg.body)


def _wait(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _send_through_kills(node: NodeHandle, kill: Callable[[], None]) -> set[bytes]:
    """Run the producers, call ``kill`` KILLS times with sends in flight; the bodies acked."""
    stop = threading.Event()
    senders = [_Sender(i, node, stop) for i in range(PRODUCERS)]
    for s in senders:
        s.producer.startup()
        s.start()
    try:
        for _ in range(KILLS):
            before = sum(len(s.acked) for s in senders)
            _wait(lambda: sum(len(s.acked) for s in senders) >= before + ACKED_BEFORE_KILL, timeout=60)
            kill()
        _wait(lambda: sum(len(s.acked) for s in senders) >= before + 2 * ACKED_BEFORE_KILL, timeout=60)
    finally:
        stop.set()
        for s in senders:
            s.join(timeout=30)
            s.producer.shutdown()
    acked = {body for s in senders for body in s.acked}
    assert len(acked) >= (KILLS + 1) * ACKED_BEFORE_KILL
    return acked


def _assert_all_received(node: NodeHandle, acked: set[bytes]) -> None:
    consumer = SimpleConsumer(node.client_config(*ALL_ACCESS), "g1", {"orders": FilterExpression("kill")})
    consumer.startup()
    received: set[bytes] = set()
    try:
        deadline = time.monotonic() + 90
        while not acked <= received and time.monotonic() < deadline:
            for m in consumer.receive(32, 30):
                # whatever is there is whole: one of our bodies, byte for byte
                producer, _, rest = m.body.partition(b"-")
                seq = int(rest.split(b"|", 1)[0])
                assert m.body == _body(int(producer[1:]), seq)
                received.add(m.body)
                consumer.ack(m)
    finally:
        consumer.shutdown()
    lost = acked - received
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged messages lost, e.g. {sorted(lost)[:3]}"


def test_nothing_acknowledged_is_lost_when_the_node_is_killed_under_load(start_node) -> None:
    node = start_node(default_state(), durability="sync")

    def kill_node() -> None:
        node.kill()
        node.restart()

    _assert_all_received(node, _send_through_kills(node, kill_node))
    assert node.log_text().count("store recovered after an unclean shutdown") == KILLS


def test_nothing_acknowledged_is_lost_when_grpc_workers_are_killed_under_load(start_node) -> None:
    """The producers' connections go through the node's gRPC front-end workers: SIGKILL one of
    them at a time; the node replaces it, the SDK reconnects, and nothing acked is lost."""
    node = start_node(default_state(), durability="sync", extra_args=("--grpc-workers", "2"))
    pid = node.process.pid

    def serving() -> int:
        return int(json.loads(node.http_get("/healthz")[1])["grpc_workers"])

    def kill_worker() -> None:
        victim = max(child_pids(pid))  # the newest: every round kills a different process
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: victim not in child_pids(pid) and serving() == 2, timeout=30)

    _assert_all_received(node, _send_through_kills(node, kill_worker))
    assert node.log_text().count("exited with -9; restarting") == KILLS
    assert "store recovered after an unclean shutdown" not in node.log_text()
