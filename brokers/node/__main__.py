"""``python -m brokers.node --state-file state.json --data-dir DIR [options]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from brokers.node.agent import AgentConfig
from brokers.node.config import NodeConfig, StateError
from brokers.node.eventloop import CHOICES as LOOP_CHOICES
from brokers.node.eventloop import run as run_on_loop
from brokers.node.heap import freeze_startup_heap
from brokers.node.relay.pool import PortInUse, WorkerStartError
from brokers.node.server import Node


def parse_args(argv: list[str] | None = None) -> tuple[NodeConfig, AgentConfig | None]:
    p = argparse.ArgumentParser(prog="python -m brokers.node", description=__doc__)
    p.add_argument("--state-file", type=Path, required=True, help="desired-state JSON file")
    p.add_argument("--data-dir", type=Path, required=True, help="this node's data directory")
    p.add_argument("--host", default="127.0.0.1", help="listen address")
    p.add_argument("--grpc-port", type=int, default=8081)
    p.add_argument("--metrics-port", type=int, default=0)
    p.add_argument("--advertise", default=None, help="host[:port] handed out in routes")
    p.add_argument("--durability", choices=("sync", "async"), default="sync")
    p.add_argument("--tls-cert", type=Path, default=None)
    p.add_argument("--tls-key", type=Path, default=None)
    p.add_argument("--node-id", type=int, default=0)
    p.add_argument("--segment-bytes", type=int, default=1024 * 1024 * 1024)
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--event-loop", choices=LOOP_CHOICES, default="auto",
                   help="auto = uvloop (a dependency) when it imports, else asyncio")
    p.add_argument("--grpc-workers", type=int, default=None,
                   help="gRPC front-end worker processes sharing the port; 0 serves gRPC in the "
                        "core process (default: one per CPU, at most 4; 0 on a single CPU)")
    p.add_argument("--control-plane-url", default=None,
                   help="ws(s):// URL of the control plane's node endpoint (starts the agent)")
    p.add_argument("--control-plane-node-id", type=int, default=None,
                   help="this node's id in the control plane")
    p.add_argument("--heartbeat-interval", type=float, default=5.0, help="seconds")
    p.add_argument("--reconnect-max", type=float, default=30.0,
                   help="longest wait between reconnect attempts to the control plane, seconds")
    a = p.parse_args(argv)
    if bool(a.tls_cert) != bool(a.tls_key):
        p.error("--tls-cert and --tls-key go together")
    agent = None
    if a.control_plane_url:
        # The token comes from the environment only: command lines are visible to every user.
        token = os.environ.get("MQ_NODE_TOKEN", "")
        if not token or a.control_plane_node_id is None:
            p.error("--control-plane-url needs --control-plane-node-id and MQ_NODE_TOKEN in the environment")
        agent = AgentConfig(url=a.control_plane_url, node_id=a.control_plane_node_id, token=token,
                            heartbeat_interval_s=a.heartbeat_interval,
                            backoff_max_s=a.reconnect_max)
    adv_host, adv_port = None, None
    if a.advertise:
        adv_host, _, port = a.advertise.partition(":")
        adv_port = int(port) if port else None
    logging.basicConfig(
        level=a.log_level.upper(), stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    return NodeConfig(
        state_file=a.state_file, data_dir=a.data_dir, listen_host=a.host, grpc_port=a.grpc_port,
        metrics_port=a.metrics_port, advertised_host=adv_host, advertised_port=adv_port,
        durability=a.durability, tls_cert=a.tls_cert, tls_key=a.tls_key, node_id=a.node_id,
        segment_bytes=a.segment_bytes, event_loop=a.event_loop,
        grpc_workers=default_grpc_workers() if a.grpc_workers is None else a.grpc_workers,
    ), agent


def default_grpc_workers() -> int:
    """One front-end worker per CPU, at most 4. On one CPU the relay hop would only add cost:
    the workers pay off by running grpc's HTTP/2 work beside the core (docs/grpc-endpoint.md)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 0 if cpus < 2 else min(cpus, 4)


async def _main(config: NodeConfig, agent: AgentConfig | None = None) -> None:
    node = Node(config, agent)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGHUP, node.reload_state)
    # The process is the node's alone: what startup built lives as long as it does.
    await node.run(stop, on_started=freeze_startup_heap)


def main(argv: list[str] | None = None) -> int:
    config, agent = parse_args(argv)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        run_on_loop(_main(config, agent), config.event_loop)
    except (StateError, PortInUse, WorkerStartError) as exc:
        logging.getLogger("brokers.node").error("%s", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
