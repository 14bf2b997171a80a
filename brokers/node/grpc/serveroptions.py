"""How every gRPC listener of a node is set up (in-process, or a front-end worker): its server
options and its (optionally TLS) port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc


def server_options(max_message_bytes: int, *, reuseport: bool) -> list[tuple[str, Any]]:
    """``reuseport``: several front-end workers share the port (the kernel spreads
    connections); a single in-process server keeps it off so a second node cannot bind the same
    port unnoticed."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 1 if reuseport else 0),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]


def add_port(server: grpc.aio.Server, host: str, port: int, tls_cert: Path | None,
             tls_key: Path | None) -> int:
    """Bind ``host:port`` (0 = any free port), with TLS when both paths are given; returns the
    bound port."""
    address = f"{host}:{port}"
    if tls_cert and tls_key:
        creds = grpc.ssl_server_credentials([(tls_key.read_bytes(), tls_cert.read_bytes())])
        return server.add_secure_port(address, creds)
    return server.add_insecure_port(address)
