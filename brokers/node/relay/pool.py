"""The core's side of its front-end workers: start them on one port, restart a dead one, stop
them in order (they drain their calls while the core still answers)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from brokers.node.config import NodeConfig

from .core import RelayCore

log = logging.getLogger("brokers.node.relay")

_PROJECT_ROOT: Final = Path(__file__).resolve().parents[3]
START_TIMEOUT_S: Final = 30.0
#: A worker of a SIGKILLed node exits within milliseconds (PR_SET_PDEATHSIG); give it that long.
PORT_RELEASE_WAIT_S: Final = 3.0
RESTART_BACKOFF_S: Final = (0.1, 0.5, 2.0, 5.0)
_CORE_ONLY_ENV: Final = frozenset({"MQ_NODE_TOKEN"})
#: grpc core switches for the workers, unless the node's environment sets GRPC_EXPERIMENTS
#: itself. With EventEngine's listener and callback CQ off, the thread that polls the
#: completion queue (grpc.aio's poller) reads and writes the sockets itself instead of handing
#: every I/O event to EventEngine's thread pool: 9.6 instead of 13.8 context switches per paced
#: send, 5-10 % less CPU per message (docs/performance.md, sixth round).
WORKER_GRPC_EXPERIMENTS: Final = "-event_engine_listener,-event_engine_callback_cq"


def worker_environment(node_env: dict[str, str]) -> dict[str, str]:
    """A front-end worker's environment: the node's, without what only the core may hold (the
    agent's token), with the project importable and the workers' grpc switches."""
    env = {k: v for k, v in node_env.items() if k not in _CORE_ONLY_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_PROJECT_ROOT),
                                                      env.get("PYTHONPATH")]))
    env.setdefault("GRPC_EXPERIMENTS", WORKER_GRPC_EXPERIMENTS)
    return env


class WorkerStartError(RuntimeError):
    """A front-end worker did not come up (its own log says why)."""


class PortInUse(OSError):
    """Something already listens on the node's gRPC port."""


def ensure_port_free(host: str, port: int, wait_s: float = PORT_RELEASE_WAIT_S) -> None:
    """Refuse a port that something already listens on (the workers bind it with SO_REUSEPORT,
    which alone would let them join another process's listener unnoticed)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + wait_s
    while True:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            try:
                probe.bind((host, port))
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    raise PortInUse(exc.errno, f"gRPC port {host}:{port} is in use") from None
        time.sleep(0.1)


class FrontendPool:
    """``count`` worker processes serving ``config``'s gRPC address through ``relay``."""

    def __init__(self, config: NodeConfig, relay: RelayCore, count: int,
                  on_restart: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.relay = relay
        self.count = count
        self._on_restart = on_restart
        self.port = 0
        self.procs: dict[int, asyncio.subprocess.Process] = {}
        self._serving: set[int] = set()  # indices of workers that said HELLO and still run
        self._watchers: dict[int, asyncio.Task[None]] = {}
        self._stopping = False

    async def start(self) -> int:
        """Start every worker; returns the port they serve (the configured one, or the one the
        first worker was given when it asked for port 0)."""
        cfg = self.config
        if cfg.grpc_port:
            await asyncio.to_thread(ensure_port_free, cfg.listen_host, cfg.grpc_port)
        self.port = await self._spawn(0, cfg.grpc_port)
        await asyncio.gather(*(self._spawn(i, self.port) for i in range(1, self.count)))
        return self.port

    async def _spawn(self, index: int, port: int) -> int:
        cfg = self.config
        ready = self.relay.expect_worker(index)
        args = [
            sys.executable, "-m", "brokers.node.relay",
            "--core-socket", str(self.relay.socket_path),
            "--index", str(index), "--host", cfg.listen_host, "--port", str(port),
            "--max-message-bytes", str(cfg.max_grpc_message_bytes),
            "--grace", str(cfg.shutdown_grace_s), "--event-loop", cfg.event_loop,
            "--log-level", logging.getLevelName(logging.getLogger().getEffectiveLevel()),
        ]
        if cfg.tls_cert and cfg.tls_key:
            args += ["--tls-cert", str(cfg.tls_cert), "--tls-key", str(cfg.tls_key)]
        # The agent's token stays with the core: a worker talks to nobody but the core.
        proc = await asyncio.create_subprocess_exec(*args, env=worker_environment(dict(os.environ)))
        self.procs[index] = proc
        exited = asyncio.ensure_future(proc.wait())
        try:
            done, _ = await asyncio.wait([ready, exited], timeout=START_TIMEOUT_S,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
        if ready not in done:
            ready.cancel()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise WorkerStartError(
                f"gRPC front-end worker {index} did not start serving "
                f"(exit code {proc.returncode}); see its log above"
            )
        served = ready.result()
        self._serving.add(index)
        self._watchers[index] = asyncio.get_running_loop().create_task(self._watch(index, proc))
        return served

    async def _watch(self, index: int, proc: asyncio.subprocess.Process) -> None:
        """Restart a worker that died while the node serves (its calls failed with it; the
        clients retry on the other workers meanwhile)."""
        code = await proc.wait()
        self._serving.discard(index)
        if not self._stopping:
            log.error("gRPC front-end worker %d (pid %d) exited with %s; restarting",
                      index, proc.pid, code)
            self._on_restart()
        attempt = 0
        while not self._stopping:
            await asyncio.sleep(RESTART_BACKOFF_S[min(attempt, len(RESTART_BACKOFF_S) - 1)])
            try:
                await self._spawn(index, self.port)
                return
            except (WorkerStartError, OSError) as exc:
                log.error("%s", exc)
                attempt += 1

    def alive(self) -> int:
        """Workers serving now (one that is starting or restarting is not counted)."""
        return sum(1 for i in self._serving if self.procs[i].returncode is None)

    async def stop(self, grace_s: float) -> None:
        """SIGTERM every worker (each stops accepting and drains its calls for ``grace_s``),
        then wait for them; kill what is still running after that."""
        self._stopping = True
        for task in self._watchers.values():
            task.cancel()
        await asyncio.gather(*self._watchers.values(), return_exceptions=True)
        procs = [p for p in self.procs.values() if p.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), grace_s + 3.0)
        except TimeoutError:
            for proc in procs:
                if proc.returncode is None:
                    log.warning("gRPC front-end worker pid %d did not stop: killed", proc.pid)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(p.wait() for p in procs))
