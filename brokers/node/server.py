"""Broker node process lifecycle: start, serve, reload state, shut down gracefully.

``Node.run(stop)`` serves until the injected ``stop`` event is set (SIGTERM/SIGINT in
``__main__``, or a test). Order on start: desired state -> store -> delivery engine -> gRPC ->
metrics port. Order on stop: refuse new RPCs and drain in-flight ones (``server.stop(grace)``),
then the metrics port, the engine, and finally the store (flush + clean-shutdown marker).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import grpc

from brokers.node.admin import AdminService
from brokers.node.agent import AgentConfig, NodeAgent
from brokers.node.agent.metrics_report import MetricsReporter
from brokers.node.config import NodeConfig, StateError, StateHolder
from brokers.node.delivery import DeliveryEngine
from brokers.node.eventloop import running_loop_name
from brokers.node.grpc.runtime import NodeRuntime
from brokers.node.grpc.serveroptions import add_port, server_options
from brokers.node.grpc.servicer import MessagingServicer, add_to_server, method_handlers
from brokers.node.grpc.transaction import make_transaction_checker
from brokers.node.metrics import MetricsServer, NodeMetrics
from brokers.node.relay.core import RelayCore
from brokers.node.relay.pool import FrontendPool
from brokers.node.store import MessageStore, RecoveryReport, StoreConfig

log = logging.getLogger("brokers.node")

#: A client without Telemetry stream and heartbeat for this long is considered gone.
CLIENT_IDLE_S: Final = 90
CLIENT_REAP_INTERVAL_S: Final = 10


class Node:
    """One broker node: its store, engine, gRPC server and metrics port."""

    def __init__(self, config: NodeConfig, agent: AgentConfig | None = None) -> None:
        self.config = config
        self.agent_config = agent
        self.agent: NodeAgent | None = None
        self.state = StateHolder(config.state_file)
        self.metrics = NodeMetrics()
        self.store: MessageStore | None = None
        self.delivery: DeliveryEngine | None = None
        self.runtime: NodeRuntime | None = None
        self.grpc_port: int = 0
        self._grpc: grpc.aio.Server | None = None
        self._relay: RelayCore | None = None
        self._frontends: FrontendPool | None = None
        self._metrics_server: MetricsServer | None = None
        self._reporter: MetricsReporter | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._serving = False

    async def start(self) -> None:
        cfg = self.config
        if not self.state.reload() and self.state.last_error:
            raise StateError("$", f"initial desired state unusable: {self.state.last_error}")
        self.store = await MessageStore.open(StoreConfig(
            root=cfg.data_dir / "store", durability=cfg.durability, node_id=cfg.node_id,
            segment_bytes=cfg.segment_bytes,
        ))
        self._log_recovery(self.store.recovery_report)
        self.metrics.track_store_position(self._store_end_offset)
        self.delivery = engine = await self._start_delivery()
        self.runtime = NodeRuntime(
            config=cfg, state_holder=self.state, store=self.store, delivery=engine,
            metrics=self.metrics,
        )
        engine.set_transaction_checker(make_transaction_checker(self.runtime))
        servicer = MessagingServicer(self.runtime)
        if cfg.grpc_workers > 0:
            self.grpc_port = await self._start_frontends(servicer)
        else:
            self.grpc_port = await self._start_grpc(servicer)
        self._metrics_server = MetricsServer(
            self.metrics, self.health, cfg.listen_host, cfg.metrics_port
        )
        await self._metrics_server.start()
        self._spawn(self._watch_state())
        self._spawn(self._reap_clients())
        self._serving = True
        if self.agent_config is not None:  # pushed states take the state file's path
            admin = AdminService(self.store, engine, state=self.state, clients=self.runtime.clients)
            self.agent = NodeAgent(self.agent_config, self.state, self.metrics, self._agent_extras,
                                   admin=admin.handle)
            await self.agent.start()
        log.info(
            "node serving gRPC%s on %s:%d%s, metrics on %d, durability=%s, state version %d, "
            "event loop %s",
            " (TLS)" if cfg.tls_cert else "", cfg.listen_host, self.grpc_port,
            f" from {cfg.grpc_workers} front-end worker(s)" if cfg.grpc_workers else "",
            self._metrics_server.port, cfg.durability, self.state.current.version,
            running_loop_name(),
        )

    async def _start_grpc(self, servicer: MessagingServicer) -> int:
        """Serve gRPC in this process; returns the bound port."""
        cfg = self.config
        self._grpc = grpc.aio.server(
            options=server_options(cfg.max_grpc_message_bytes, reuseport=False)
        )
        add_to_server(servicer, self._grpc)
        port = add_port(self._grpc, cfg.listen_host, cfg.grpc_port, cfg.tls_cert, cfg.tls_key)
        await self._grpc.start()
        return port

    async def _start_frontends(self, servicer: MessagingServicer) -> int:
        """Serve gRPC from worker processes that relay every call here; returns their port."""
        self._relay = RelayCore(method_handlers(servicer))
        await self._relay.start(self.config.data_dir)
        self._frontends = pool = FrontendPool(self.config, self._relay, self.config.grpc_workers,
                                              on_restart=self.metrics.grpc_worker_restarts.inc)
        self.metrics.track_grpc_workers(lambda: float(pool.alive()))
        return await pool.start()

    async def _start_delivery(self) -> DeliveryEngine:
        assert self.store is not None
        engine = DeliveryEngine(
            self.store, state_path=self.config.data_dir / "delivery.sqlite3", clock=time.time
        )
        await engine.start()
        return engine

    @staticmethod
    def _log_recovery(report: RecoveryReport) -> None:
        """Say what opening the store found: operators read this after a crash."""
        if report.clean:
            log.info("store opened after a clean shutdown, end offset %d", report.end_offset)
            return
        log.warning(
            "store recovered after an unclean shutdown: replayed %d record(s) from offset %d to %d, "
            "truncated %d byte(s)%s, dropped %d consume-queue entr(ies); %s",
            report.records_replayed, report.replay_start, report.end_offset, report.bytes_truncated,
            f" at {report.truncated_at}" if report.truncated_at is not None else "",
            report.consume_queue_entries_dropped, report.reason,
        )

    def _store_end_offset(self) -> float:
        return float(self.store.end_offset) if self.store is not None else 0.0

    def health(self) -> dict[str, Any]:
        workers = self._frontends.alive() if self._frontends is not None else 0
        return {
            # with front-end workers, serving needs at least one of them running
            "ok": self._serving and (self._frontends is None or workers > 0),
            "state_version": self.state.current.version,
            "state_error": self.state.last_error,
            "delivery": self.delivery is not None,
            # gRPC front-end workers serving the port / configured (0 / 0: served in-process)
            "grpc_workers": workers,
            "grpc_workers_configured": self.config.grpc_workers,
        }

    def reload_state(self) -> None:
        """Re-read the desired-state file now (SIGHUP)."""
        self.state.reload()

    async def _watch_state(self) -> None:
        while True:
            await asyncio.sleep(self.config.state_poll_interval_s)
            if self.state.changed_on_disk():
                self.state.reload()

    async def _reap_clients(self) -> None:
        """Release what vanished clients held (protocol doc §4.3: gone after ~1-2 minutes
        without heartbeat or Telemetry), so their auto-renewed messages are redelivered."""
        assert self.runtime is not None and self.delivery is not None
        while True:
            await asyncio.sleep(CLIENT_REAP_INTERVAL_S)
            for client_id in self.runtime.clients.expire(time.time(), CLIENT_IDLE_S):
                log.info("client %s idle for %ds: released", client_id, CLIENT_IDLE_S)
                self.delivery.release_client(client_id)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _agent_extras(self) -> dict[str, Any]:
        """The metrics report the agent sends (docs/metrics-and-alerting.md §1)."""
        if self._reporter is None:
            assert self.store is not None and self.delivery is not None
            self._reporter = MetricsReporter(
                metrics=self.metrics, store=self.store, delivery=self.delivery,
                state=lambda: self.state.current, data_dir=self.config.data_dir,
                connections=lambda: len(self.runtime.clients) if self.runtime is not None else 0,
            )
        return await self._reporter.report()

    async def stop(self) -> None:
        self._serving = False
        if self.agent is not None:
            await self.agent.stop()
        if self.runtime is not None:
            # Telemetry streams never end by themselves; close them so the grace period is
            # spent on real in-flight calls.
            self.runtime.clients.close_streams()
        if self._grpc is not None:
            await self._grpc.stop(self.config.shutdown_grace_s)
        if self._frontends is not None:
            await self._frontends.stop(self.config.shutdown_grace_s)
        if self._relay is not None:
            await self._relay.stop()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)  # never swallows our own cancel
        if self.delivery is not None:
            await self.delivery.stop()
        if self.store is not None:
            await self.store.close()
        log.info("node stopped")

    async def run(self, stop: asyncio.Event,
                  on_started: Callable[[], None] | None = None) -> None:
        """Start, call ``on_started`` (if given), serve until ``stop`` is set, then shut down
        gracefully."""
        try:
            await self.start()  # a failed start still closes what it opened (the store)
            if on_started is not None:
                on_started()
            await stop.wait()
        finally:
            await self.stop()
