"""Process-level configuration of a broker node (from the command line / environment)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

MiB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class NodeConfig:
    """Everything the node needs that is not tenant state.

    ``advertised_host``/``advertised_port`` override what QueryRoute hands out; when neither the
    config nor the desired state names one, the route echoes the address the client dialled.
    """

    state_file: Path
    data_dir: Path
    listen_host: str = "127.0.0.1"
    grpc_port: int = 8081
    metrics_port: int = 0
    advertised_host: str | None = None
    advertised_port: int | None = None
    durability: Literal["sync", "async"] = "sync"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    node_id: int = 0
    segment_bytes: int = 1024 * MiB
    state_poll_interval_s: float = 1.0
    shutdown_grace_s: float = 5.0
    max_grpc_message_bytes: int = 16 * MiB
    #: Signature freshness window around any real time-zone offset (protocol doc 1.4).
    signature_skew_s: float = 300.0
    #: ``auto`` runs on uvloop when it is installed, else on asyncio's own loop.
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"
    #: gRPC front-end worker processes sharing the port (``brokers.node.relay``); 0 serves gRPC
    #: in the core process itself.
    grpc_workers: int = 0
