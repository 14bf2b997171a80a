"""Run broker nodes as detached local processes: ``python -m brokers.node`` per node.

Layout under ``settings.MQ_NODE_ROOT/<node name>/``: ``state.json`` (the last applied desired
state, written by the node's agent, so a restart without the control plane still serves it),
``data/`` (store), ``node.log``. Ports are chosen once and kept, so endpoints stay stable.
The raw node token reaches the process through its environment (``MQ_NODE_TOKEN``), never its
command line or the logs; every real start issues a new one.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from brokers.drivers import NodeStartError, StartResult
from brokers.models import BrokerNode, NodeStatus

log = logging.getLogger("brokers.drivers.local")
REPO = Path(__file__).resolve().parents[2]


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _reap(pid: int) -> None:
    """Collect our own exited child so it does not linger as a zombie (not our child: no-op)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _cmdline(pid: int | None) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int | None, marker: str) -> bool:
    """True when ``pid`` is a live node process started for this node (``marker`` in its
    command line), so a recycled pid is never mistaken for the node."""
    if not pid:
        return False
    _reap(pid)
    proc = Path(f"/proc/{pid}")
    if proc.exists():
        try:
            if (proc / "stat").read_text().split(") ", 1)[1].startswith("Z"):
                return False
            return marker in (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            return False
    try:  # no /proc (macOS): trust the pid
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _find_pid(marker: str) -> int | None:
    """The pid of a live process whose command line holds ``marker`` (Linux /proc), if any.

    Finds a node whose start was interrupted before its pid was recorded (e.g. the worker was
    stopped while waiting for it to serve), so it is adopted instead of started twice.
    """
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return None
    for entry in proc_root.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid() and _alive(int(entry.name), marker):
            return int(entry.name)
    return None


class LocalProcessDriver:
    listen_host = "127.0.0.1"

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or settings.MQ_NODE_ROOT)

    def node_dir(self, node: BrokerNode) -> Path:
        return self.root / node.name

    def _state_file(self, node: BrokerNode) -> Path:
        return self.node_dir(node) / "state.json"

    def is_running(self, node: BrokerNode) -> bool:
        """Whether the node's process is alive; adopts (records) an unrecorded one it finds."""
        marker = f"--state-file {self._state_file(node)} "
        if _alive(node.pid, marker):
            return True
        orphan = _find_pid(marker)
        if orphan is None:
            return False
        BrokerNode.objects.filter(pk=node.pk).update(pid=orphan, updated_at=timezone.now())
        node.pid = orphan
        return True

    @transaction.atomic
    def start(self, node: BrokerNode) -> StartResult:
        from brokers.services import node_event, node_issue_token

        node = BrokerNode.objects.select_for_update().get(pk=node.pk)
        if self.is_running(node):
            cmdline = _cmdline(node.pid)
            if not cmdline or settings.MQ_CONTROL_PLANE_WS_URL in cmdline:
                return StartResult(pid=int(node.pid), started=False)  # type: ignore[arg-type]
            log.info("node %s points at another control plane: restarting it", node.name)
            self.stop(node)
        home = self.node_dir(node)
        (home / "data").mkdir(parents=True, exist_ok=True)
        state_file = self._state_file(node)
        if not state_file.exists():
            state_file.write_text(json.dumps({"version": 0, "node": {"name": node.name}, "namespaces": {}}))
        if not node.grpc_port:
            node.grpc_port = _free_port(self.listen_host)
        if not node.metrics_port:
            node.metrics_port = _free_port(self.listen_host)
        node.advertised_endpoint = f"{settings.MQ_NODE_ADVERTISE_HOST}:{node.grpc_port}"
        node.data_dir = str(home / "data")
        token = node_issue_token(node=node)
        args = [
            sys.executable, "-m", "brokers.node",
            "--state-file", str(state_file), "--data-dir", node.data_dir,
            "--host", self.listen_host, "--grpc-port", str(node.grpc_port),
            "--metrics-port", str(node.metrics_port), "--advertise", node.advertised_endpoint,
            "--node-id", str(node.pk % 1024), "--durability", "sync",
            "--control-plane-url", settings.MQ_CONTROL_PLANE_WS_URL,
            "--control-plane-node-id", str(node.pk),
            "--heartbeat-interval", str(settings.MQ_NODE_HEARTBEAT_INTERVAL_S),
            "--reconnect-max", str(getattr(settings, "MQ_NODE_RECONNECT_MAX_S", 30.0)),
        ]
        env = {**os.environ, "MQ_NODE_TOKEN": token, "PYTHONUNBUFFERED": "1"}
        for name in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SECRET_KEY", "MQ_ENCRYPTION_KEYS"):
            env.pop(name, None)  # the node needs none of the control plane's secrets
        log_path = home / "node.log"
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                args, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, close_fds=True,
            )
        try:
            self._wait_serving(process, node.metrics_port, timeout_s=settings.MQ_NODE_START_TIMEOUT_S)
        except NodeStartError as exc:
            tail = log_path.read_text(errors="replace")[-1500:]
            raise NodeStartError(f"node {node.name} {exc}; log tail: {tail}") from None
        node.pid = process.pid
        node.status = NodeStatus.STARTING
        node.started_at = timezone.now()
        node.save(update_fields=["pid", "status", "started_at", "grpc_port", "metrics_port",
                                 "advertised_endpoint", "data_dir", "updated_at"])
        node_event(node=node, kind="started", detail=f"pid {process.pid} on {node.advertised_endpoint}")
        log.info("started node %s pid %d", node.name, process.pid)
        return StartResult(pid=process.pid, started=True)

    def _wait_serving(self, process: subprocess.Popen[bytes], metrics_port: int, *, timeout_s: float) -> None:
        """Return once the node's health port answers; raise if it exits or stays silent."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise NodeStartError(f"exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://{self.listen_host}:{metrics_port}/healthz", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # answering (503 while it finishes starting) is enough
            except OSError:
                time.sleep(0.05)
        process.terminate()
        raise NodeStartError(f"not serving after {timeout_s:.0f}s")

    def stop(self, node: BrokerNode, *, grace_s: float = 10.0) -> bool:
        """SIGTERM, then SIGKILL after ``grace_s``; True when a process was stopped."""
        pid = node.pid
        stopped = False
        if self.is_running(node):
            assert pid is not None
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while self.is_running(node) and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.is_running(node):
                log.warning("node %s ignored SIGTERM for %.0fs: SIGKILL", node.name, grace_s)
                os.kill(pid, signal.SIGKILL)
                while self.is_running(node):
                    time.sleep(0.05)
            stopped = True
        BrokerNode.objects.filter(pk=node.pk).update(pid=None, updated_at=timezone.now())
        node.pid = None
        return stopped
