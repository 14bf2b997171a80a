"""Small helpers shared by the tests that run real processes: a free loopback port, polling,
the shared-services skip marker and an SDK receive loop."""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], Any], timeout: float, what: str, *, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy (returned) or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
    return value


#: Tests that run a separate daphne process (real node agents connect to it) must share the test
#: database and the channel layer with it: PostgreSQL and Redis, not SQLite and in-memory layers.
needs_shared_services = pytest.mark.skipif(
    not (os.environ.get("DATABASE_URL", "").startswith("postgres") and os.environ.get("REDIS_URL")),
    reason="a separate daphne process shares the test DB and channel layer: needs PostgreSQL + Redis",
)


def receive_until(consumer: Any, want: set[bytes], *, ack: bool = True, invisible_s: int = 15,
                  timeout: float = 60) -> list[Any]:
    """SDK SimpleConsumer: receive until every body in ``want`` arrived (acking unless told not
    to); returns every message received meanwhile."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while not want <= {m.body for m in got}:
        assert time.monotonic() < deadline, f"only got {sorted(m.body for m in got)}"
        for msg in consumer.receive(16, invisible_s):
            got.append(msg)
            if ack:
                consumer.ack(msg)
    return got
