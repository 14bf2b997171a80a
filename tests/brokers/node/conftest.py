"""Shared fixtures: a real broker node process on 127.0.0.1, and a signed raw gRPC client.

Usage from any test under tests/brokers/node/:

    def test_x(start_node):
        node = start_node(default_state(), durability="async")
        producer = Producer(node.client_config("AK_ALL", "sk-all", "ns1"))

``start_node(state, durability=..., tls=..., extra_args=...)`` writes the desired-state file,
starts ``python -m brokers.node`` as a subprocess on free ports, waits until /healthz answers, and
stops the process (SIGTERM) when the test ends. ``NodeHandle.update_state`` rewrites the file
atomically for reload tests. ``raw_client`` gives exact protocol codes where the SDK only raises.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest

REPO = Path(__file__).resolve().parents[3]
PYTHON = sys.executable

#: Credentials of ``default_state()``: (access key, secret, namespace).
ALL_ACCESS = ("AK_ALL", "sk-all-0123456789", "ns1")
READ_ONLY = ("AK_RO", "sk-ro-0123456789", "ns1")
OTHER_TENANT = ("AK_OTHER", "sk-other-0123456789", "ns2")


def default_state(version: int = 1) -> dict[str, Any]:
    """Two tenants with the same topic names; one full-access and one read-only credential."""
    everything = [
        {"resource": "topic", "pattern": "*", "actions": ["pub", "sub"]},
        {"resource": "group", "pattern": "*", "actions": ["sub"]},
    ]
    topics = {
        "orders": {"type": "NORMAL", "queues": 4},
        "fifo-orders": {"type": "FIFO", "queues": 4},
        "delayed": {"type": "DELAY", "queues": 2},
        "txn": {"type": "TRANSACTION", "queues": 2},
    }
    groups = {"g1": {}, "g-fifo": {"fifo": True}, "g-bcast": {"delivery": "broadcast"}}
    return {
        "version": version,
        "node": {"name": "test-node", "role": "master"},
        "namespaces": {
            "ns1": {
                "topics": copy.deepcopy(topics),
                "groups": copy.deepcopy(groups),
                "credentials": {
                    ALL_ACCESS[0]: {"secrets": [ALL_ACCESS[1]], "acl": everything},
                    READ_ONLY[0]: {"secrets": [READ_ONLY[1]], "acl": [
                        {"resource": "topic", "pattern": "*", "actions": ["sub"]},
                        {"resource": "group", "pattern": "*", "actions": ["sub"]},
                    ]},
                },
            },
            "ns2": {
                "topics": copy.deepcopy(topics),
                "groups": copy.deepcopy(groups),
                "credentials": {OTHER_TENANT[0]: {"secrets": [OTHER_TENANT[1]],
                                                  "acl": everything}},
            },
        },
    }


def child_pids(pid: int) -> set[int]:
    """Live (or not yet reaped) child processes of ``pid``: a node's gRPC front-end workers."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2:].split()[1]) == pid:  # field 4: the parent's pid
            found.add(int(stat.parent.name))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class NodeHandle:
    """A running node process and how to reach it."""

    process: subprocess.Popen[bytes]
    grpc_port: int
    metrics_port: int
    state_file: Path
    data_dir: Path
    log_file: Path
    tls: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)  # how it was started, for restart()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def client_config(self, ak: str, sk: str, namespace: str, request_timeout: int = 3) -> Any:
        from rocketmq import ClientConfiguration, Credentials

        return ClientConfiguration(self.endpoint, Credentials(ak, sk), namespace=namespace,
                                   request_timeout=request_timeout)

    def http_get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def update_state(self, state: dict[str, Any]) -> None:
        """Atomically replace the desired-state file (the node polls it about every second)."""
        self.state = state
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.state_file)

    def wait_for_state_version(self, version: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.http_get("/healthz")
            if status == 200 and json.loads(body)["state_version"] == version:
                return
            time.sleep(0.1)
        raise AssertionError(f"node did not apply state version {version}")

    def metric(self, name: str, **labels: str) -> float:
        """Value of one Prometheus sample (0.0 when absent)."""
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        prefix = f"{name}{{{want}}} " if labels else f"{name} "
        for line in self.http_get("/metrics")[1].splitlines():
            if line.startswith(prefix):
                return float(line[len(prefix):])
        return 0.0

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or mark a clean shutdown."""
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Start the same command again (same data dir, state file and ports) once the process
        has exited (``stop()`` or ``kill()``), and wait until it is healthy."""
        assert self.argv and self.process.poll() is not None, "stop() or kill() it first"
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(self.argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, **self.env})
        _wait_healthy(self)


def _wait_healthy(handle: NodeHandle, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise RuntimeError(f"node exited with {handle.process.returncode}:\n"
                               f"{handle.log_text()[-4000:]}")
        try:
            status, _ = handle.http_get("/healthz")
            if status == 200:
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.05)
    handle.stop()
    raise RuntimeError(f"node not healthy after {timeout}s:\n{handle.log_text()[-4000:]}")


def start_node_process(
    tmp_path: Path,
    state: dict[str, Any],
    *,
    durability: str = "async",
    tls: tuple[Path, Path] | None = None,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> NodeHandle:
    """Start a node in ``tmp_path`` (a fresh subdirectory per call) and wait until healthy."""
    root = Path(tmp_path) / f"node-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    state_file = root / "state.json"
    state_file.write_text(json.dumps(state))
    grpc_port, metrics_port = free_port(), free_port()
    args = [PYTHON, "-m", "brokers.node", "--state-file", str(state_file),
            "--data-dir", str(root / "data"), "--grpc-port", str(grpc_port),
            "--metrics-port", str(metrics_port), "--durability", durability,
            "--segment-bytes", str(64 * 1024 * 1024), *extra_args]
    if tls:
        args += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    log_file = root / "node.log"
    with log_file.open("wb") as log:
        process = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})})
    handle = NodeHandle(process, grpc_port, metrics_port, state_file, root / "data", log_file,
                        tls=tls is not None, state=state, argv=args, env=dict(env or {}))
    _wait_healthy(handle)
    return handle


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Callable[..., NodeHandle]]:
    """Factory fixture: ``start_node(state, durability="async", tls=None, extra_args=())``."""
    handles: list[NodeHandle] = []

    def factory(state: dict[str, Any] | None = None, **kwargs: Any) -> NodeHandle:
        handle = start_node_process(tmp_path, state or default_state(), **kwargs)
        handles.append(handle)
        return handle

    yield factory
    for handle in handles:
        handle.stop()


@pytest.fixture
def node(start_node: Callable[..., NodeHandle]) -> NodeHandle:
    """A fresh node with ``default_state()`` (for tests that count or change things)."""
    return start_node(default_state())


@pytest.fixture(scope="module")
def shared_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeHandle]:
    """One ``default_state()`` node per test module, for tests that only read or get refused."""
    handle = start_node_process(tmp_path_factory.mktemp("shared-node"), default_state())
    yield handle
    handle.stop()


# --------------------------------------------------------------------------- raw signed client


def sign_headers(
    ak: str, sk: str, namespace: str, *, client_id: str = "raw@1@0@test",
    when: datetime | None = None, upper: bool = False,
) -> list[tuple[str, str]]:
    """Headers as the SDK sends them; ``when`` lets tests pretend to be in another time zone."""
    stamp = (when or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    sig = hmac.new(sk.encode(), stamp.encode(), hashlib.sha1).hexdigest()
    sig = sig.upper() if upper else sig
    return [
        ("x-mq-language", "PYTHON"), ("x-mq-protocol", "GRPC_V2"),
        ("x-mq-client-version", "5.1.2"), ("x-mq-date-time", stamp),
        ("x-mq-request-id", str(uuid.uuid4())), ("x-mq-client-id", client_id),
        ("x-mq-namespace", namespace),
        ("authorization", f"MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders=x-mq-date-time, "
                          f"Signature={sig}"),
    ]


class RawClient:
    """Blocking stub plus helpers; exact protocol codes for assertions."""

    def __init__(self, endpoint: str) -> None:
        from rocketmq.grpc_protocol import service_pb2_grpc

        self.channel = grpc.insecure_channel(endpoint)
        self.stub = service_pb2_grpc.MessagingServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()


@pytest.fixture
def raw_client(node: NodeHandle) -> Iterator[RawClient]:
    client = RawClient(node.endpoint)
    yield client
    client.close()


@pytest.fixture(scope="module")
def shared_raw(shared_node: NodeHandle) -> Iterator[RawClient]:
    client = RawClient(shared_node.endpoint)
    yield client
    client.close()


def shifted(hours: float) -> datetime:
    """'Local time' of a client whose zone is ``hours`` from UTC, formatted with a fake Z."""
    return datetime.now(timezone.utc) + timedelta(hours=hours)
