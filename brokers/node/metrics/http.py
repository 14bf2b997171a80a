"""A tiny asyncio HTTP/1.1 server: ``GET /healthz`` and ``GET /metrics`` (Prometheus text).

Kept dependency-free on purpose: one request per connection, no keep-alive, bounded header size.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, Final

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .registry import NodeMetrics

log = logging.getLogger("brokers.node.metrics")

_MAX_HEAD: Final = 8192


class MetricsServer:
    """Serves health (JSON from ``health()``; 503 when ``health()["ok"]`` is false) and metrics."""

    def __init__(
        self, metrics: NodeMetrics, health: Callable[[], dict[str, Any]], host: str, port: int
    ) -> None:
        self._metrics = metrics
        self._health = health
        self._host = host
        self._port = port
        self._server: asyncio.AbstractServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            request_line = head[:_MAX_HEAD].split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split(" ")
            method, path = (parts[0], parts[1]) if len(parts) >= 2 else ("", "")
            code, ctype, body = self._route(method, path.split("?", 1)[0])
            writer.write(
                f"HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                f"Connection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            pass
        finally:
            writer.close()

    def _route(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"method not allowed\n"
        if path == "/healthz":
            health = self._health()
            code = "200 OK" if health.get("ok") else "503 Service Unavailable"
            return code, "application/json", json.dumps(health).encode()
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._metrics.registry)
        return "404 Not Found", "text/plain", b"not found\n"
