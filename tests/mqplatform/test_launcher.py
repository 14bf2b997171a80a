"""README command 1: the launcher brings web, worker and beat up on embedded defaults."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis

from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def wait_for_http(url: str, deadline: float) -> int:
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer in time")


def node_processes(marker: str, module: str = "brokers.node") -> list[int]:
    """Pids of broker node processes (``python -m <module>``) whose command line mentions
    ``marker`` (our var dir); ``brokers.node.relay`` finds the nodes' gRPC front-end workers."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().split(") ", 1)[1][:1]
        except (OSError, IndexError):
            continue
        if f" -m {module} " in cmdline and marker in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def recorded_node_pids(database: Path) -> list[int]:
    with sqlite3.connect(database) as db:
        try:
            return [pid for (pid,) in db.execute("select pid from brokers_brokernode where pid is not null")]
        except sqlite3.OperationalError:  # not migrated yet
            return []


def test_launcher_starts_everything_on_embedded_defaults_and_stops_cleanly(tmp_path: Path) -> None:
    port, redis_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env["MQ_VAR_DIR"] = str(tmp_path / "var")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mqplatform.launcher", "--port", str(port), "--redis-port", str(redis_port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        assert wait_for_http(f"http://127.0.0.1:{port}/", deadline) == 200
        assert wait_for_http(f"http://127.0.0.1:{port}/api/schema/", deadline) == 200
        assert redis.Redis(host="127.0.0.1", port=redis_port).ping()
        assert (tmp_path / "var" / "db.sqlite3").exists()
        assert (tmp_path / "var" / "encryption_key").stat().st_mode & 0o077 == 0
        # The data plane: bootstrap queued the local node's start on this host's worker, which
        # records the pid once the node serves.
        while not recorded_node_pids(tmp_path / "var" / "db.sqlite3") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert recorded_node_pids(tmp_path / "var" / "db.sqlite3") == node_processes(str(tmp_path))
        assert len(node_processes(str(tmp_path))) == 1
        assert node_processes(str(tmp_path), "brokers.node.relay")  # its front-end workers
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
    assert f"http://127.0.0.1:{port}/" in output
    assert "createsuperuser" in output
    for name in ("web", "worker", "beat"):
        assert f"{name}.1" in output, f"{name} never started:\n{output[-3000:]}"
    assert "stopped 1 broker node(s)" in output
    assert node_processes(str(tmp_path)) == []
    assert node_processes(str(tmp_path), "brokers.node.relay") == []
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.1", port=redis_port, socket_connect_timeout=1).ping()
