"""How broker node processes are started and stopped on a host.

``NodeDriver`` is the seam: :class:`LocalProcessDriver` runs nodes as detached processes on the
worker's own machine (one worker per host consumes ``host.<name>``); a Kubernetes driver is a
design in docs/fleet.md. Drivers are called from tasks on the node's host queue only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from brokers.models import BrokerNode


@dataclass(frozen=True)
class StartResult:
    pid: int
    started: bool  # False when a live process was already running (idempotent retry)


class NodeStartError(RuntimeError):
    """The node process could not be started or exited at once (message has the log tail)."""


class NodeDriver(Protocol):
    def start(self, node: BrokerNode) -> StartResult: ...

    def stop(self, node: BrokerNode, *, grace_s: float = 10.0) -> bool: ...

    def is_running(self, node: BrokerNode) -> bool: ...


def get_driver() -> NodeDriver:
    from brokers.drivers.local import LocalProcessDriver

    return LocalProcessDriver()
