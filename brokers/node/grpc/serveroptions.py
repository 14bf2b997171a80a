"""The grpc.aio server options every gRPC listener of a node uses (in-process or front-end)."""

from __future__ import annotations

from typing import Any


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
