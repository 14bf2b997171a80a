"""gRPC front-end workers: the node's port served by worker processes relaying to the core.

Real node processes on loopback; the worker processes are found as the node's children.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.relay.pool import WORKER_GRPC_EXPERIMENTS, worker_environment

from ..conftest import (
    ALL_ACCESS,
    PYTHON,
    REPO,
    NodeHandle,
    RawClient,
    child_pids,
    default_state,
    sign_headers,
)

pytestmark = pytest.mark.slow
AK, SK, NS = ALL_ACCESS


def wait_for(predicate: Callable[[], bool], timeout: float = 15, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def send(raw: RawClient, body: bytes, topic: str = "orders") -> spb.SendMessageResponse:
    req = spb.SendMessageRequest(messages=[pb.Message(
        topic=pb.Resource(resource_namespace=NS, name=topic), body=body,
        system_properties=pb.SystemProperties(message_id=os.urandom(8).hex(),
                                              message_type=pb.NORMAL, tag="t"))])
    return raw.stub.SendMessage(req, metadata=sign_headers(AK, SK, NS), timeout=5)


def receive_request(long_poll_s: int, queue_id: int = 0) -> spb.ReceiveMessageRequest:
    return spb.ReceiveMessageRequest(
        group=pb.Resource(resource_namespace=NS, name="g1"),
        message_queue=pb.MessageQueue(topic=pb.Resource(resource_namespace=NS, name="orders"),
                                      id=queue_id),
        filter_expression=pb.FilterExpression(type=pb.TAG, expression="*"),
        batch_size=8, invisible_duration={"seconds": 60},
        long_polling_timeout={"seconds": long_poll_s},
    )


def received_bodies(raw: RawClient, long_poll_s: int = 1) -> list[bytes]:
    bodies: list[bytes] = []
    for queue_id in range(4):
        for resp in raw.stub.ReceiveMessage(receive_request(long_poll_s, queue_id),
                                            metadata=sign_headers(AK, SK, NS), timeout=10):
            if resp.HasField("message"):
                bodies.append(resp.message.body)
    return bodies


def test_node_serves_from_its_workers(start_node: Callable[..., NodeHandle]) -> None:
    node = start_node(extra_args=("--grpc-workers", "2"), env={"MQ_NODE_TOKEN": "agent-secret"})
    workers = child_pids(node.process.pid)
    assert len(workers) == 2
    # The control-plane token stays in the core: the workers never see it.
    assert b"MQ_NODE_TOKEN=agent-secret" in Path(f"/proc/{node.process.pid}/environ").read_bytes()
    for pid in workers:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not any(v.startswith(b"MQ_NODE_TOKEN=") for v in environ)
        # grpc polls its sockets on the completion-queue thread (pool.WORKER_GRPC_EXPERIMENTS)
        assert f"GRPC_EXPERIMENTS={WORKER_GRPC_EXPERIMENTS}".encode() in environ
    assert "from 2 front-end worker(s)" in node.log_text()
    raw = RawClient(node.endpoint)
    try:
        # Several connections: the kernel spreads them over both workers (SO_REUSEPORT).
        for i in range(8):
            extra = RawClient(node.endpoint)
            assert send(extra, f"m{i}".encode()).status.code == pb.Code.OK
            extra.close()
        assert sorted(received_bodies(raw)) == sorted(f"m{i}".encode() for i in range(8))
        assert child_pids(node.process.pid) == workers
        # What a handler raises on the core reaches the client as grpc.aio would report it.
        # A request that is not protobuf: refused as grpc.aio refuses it in-process.
        send_bytes = raw.channel.unary_unary("/apache.rocketmq.v2.MessagingService/SendMessage")
        with pytest.raises(grpc.RpcError) as err:
            send_bytes(b"\xff\xff not protobuf", metadata=sign_headers(AK, SK, NS), timeout=5)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        assert send(raw, b"still serving").status.code == pb.Code.OK
    finally:
        raw.close()


def test_in_process_grpc_still_serves(start_node: Callable[..., NodeHandle]) -> None:
    node = start_node(extra_args=("--grpc-workers", "0"))
    assert child_pids(node.process.pid) == set()
    raw = RawClient(node.endpoint)
    try:
        assert send(raw, b"solo").status.code == pb.Code.OK
        assert received_bodies(raw) == [b"solo"]
    finally:
        raw.close()


def test_a_killed_worker_is_replaced(start_node: Callable[..., NodeHandle]) -> None:
    node = start_node(extra_args=("--grpc-workers", "2"))
    before = child_pids(node.process.pid)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(child_pids(node.process.pid) - {victim}) == 2, what="a new worker")
    assert "exited with -9; restarting" in node.log_text()
    wait_for(lambda: json.loads(node.http_get("/healthz")[1])["grpc_workers"] == 2,
             what="health to count two workers again")
    assert node.metric("mq_grpc_worker_restarts_total") == 1
    assert node.metric("mq_grpc_workers") == 2
    for i in range(4):  # fresh connections, whichever worker takes them
        client = RawClient(node.endpoint)
        try:
            assert send(client, f"after{i}".encode()).status.code == pb.Code.OK
        finally:
            client.close()
    assert node.stop() == 0


def test_workers_die_with_a_killed_node_and_free_the_port(
        start_node: Callable[..., NodeHandle]) -> None:
    node = start_node(extra_args=("--grpc-workers", "2"))
    raw = RawClient(node.endpoint)
    assert send(raw, b"kept").status.code == pb.Code.OK
    raw.close()
    workers = child_pids(node.process.pid)
    node.kill()
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), timeout=5,
             what="the workers to exit")
    node.restart()  # same port: nothing of the old node holds it
    raw = RawClient(node.endpoint)
    try:
        assert received_bodies(raw) == [b"kept"]
    finally:
        raw.close()


def test_a_port_in_use_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps(default_state()))
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        out = subprocess.run(
            [PYTHON, "-m", "brokers.node", "--state-file", str(state), "--data-dir",
             str(tmp_path / "data"), "--grpc-port", str(port), "--grpc-workers", "2"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )
    assert out.returncode == 2
    assert f"gRPC port 127.0.0.1:{port} is in use" in out.stderr
    assert "Traceback" not in out.stderr
    assert "node stopped" in out.stderr  # what the failed start opened (the store) was closed


def test_a_cancelled_long_poll_is_cancelled_at_the_core(
        start_node: Callable[..., NodeHandle]) -> None:
    """A client that gives up a long-polling receive must not leave the core holding it: the
    message sent afterwards goes to the next receive, not to the abandoned one (where it would
    stay invisible for 60 s)."""
    node = start_node(extra_args=("--grpc-workers", "2"))
    raw = RawClient(node.endpoint)
    try:
        call = raw.stub.ReceiveMessage(receive_request(long_poll_s=20, queue_id=0),
                                       metadata=sign_headers(AK, SK, NS), timeout=25)
        reader = threading.Thread(target=lambda: list(_drain(call)), daemon=True)
        reader.start()
        time.sleep(1.0)  # the receive is now parked on the core, waiting for messages
        call.cancel()
        reader.join(5)
        time.sleep(0.5)
        for _ in range(8):  # spread over the queues: the parked receive watched queue 0
            assert send(raw, b"late").status.code == pb.Code.OK
        assert received_bodies(raw) == [b"late"] * 8
    finally:
        raw.close()


def _drain(call: grpc.Call) -> list[spb.ReceiveMessageResponse]:
    try:
        return list(call)  # type: ignore[call-overload]
    except grpc.RpcError:
        return []


def test_worker_environment_keeps_the_operators_grpc_switches() -> None:
    env = worker_environment({"GRPC_EXPERIMENTS": "-tcp_rcv_lowat", "MQ_NODE_TOKEN": "t",
                              "PYTHONPATH": "/extra"})
    assert env["GRPC_EXPERIMENTS"] == "-tcp_rcv_lowat"
    assert "MQ_NODE_TOKEN" not in env
    assert env["PYTHONPATH"].endswith(os.pathsep + "/extra")
    assert worker_environment({})["GRPC_EXPERIMENTS"] == WORKER_GRPC_EXPERIMENTS
