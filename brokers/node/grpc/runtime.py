"""Everything a request handler may touch, gathered in one object built by the server."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from brokers.node.auth import Authenticator
from brokers.node.config import (
    DeliveryMode,
    DesiredState,
    GroupSpec,
    NamespaceSpec,
    NodeConfig,
    StateHolder,
    TopicSpec,
)
from brokers.node.delivery import ConsumerGroup, DeliveryEngine
from brokers.node.metrics import NodeMetrics
from brokers.node.quota import QuotaManager

from .clients import ClientRegistry
from .errors import GroupNotFound, TopicNotFound
from .replay import ReceiveReplay

if TYPE_CHECKING:
    from brokers.node.store import MessageStore


@dataclass
class NodeRuntime:
    """Shared, long-lived collaborators of the servicer (one per process, one event loop)."""

    config: NodeConfig
    state_holder: StateHolder
    store: MessageStore
    delivery: DeliveryEngine
    metrics: NodeMetrics
    clock: Callable[[], float] = time.time
    clients: ClientRegistry = field(default_factory=ClientRegistry)
    #: FIFO receives remembered by attempt id, for a retried attempt whose reply was lost.
    replay: ReceiveReplay = field(default_factory=ReceiveReplay)
    quotas: QuotaManager = field(init=False)
    authenticator: Authenticator = field(init=False)
    #: ConsumerGroup per GroupSpec of the current state (by identity; emptied on each state).
    _engine_groups: dict[int, tuple[GroupSpec, ConsumerGroup]] = field(
        init=False, default_factory=dict)

    def __post_init__(self) -> None:
        # Storage quota: the store's per-namespace usage (survives restarts, shrinks on retention).
        self.quotas = QuotaManager(time.monotonic, self.store.usage.namespace_bytes)
        self.apply_state(self.state_holder.current)
        self.state_holder.subscribe(self.apply_state)

    def apply_state(self, state: DesiredState) -> None:
        """Rebuild everything derived from the desired state (called on each new version)."""
        self.authenticator = Authenticator(state, skew_s=self.config.signature_skew_s)
        self._engine_groups = {}
        self.quotas.apply(state)
        self.metrics.state_version.set(state.version)

    @property
    def state(self) -> DesiredState:
        return self.state_holder.current

    def topic(self, ns: NamespaceSpec, name: str) -> TopicSpec:
        spec = ns.topics.get(name)
        if spec is None:
            raise TopicNotFound(f"topic {name!r} does not exist in namespace {ns.name!r}")
        return spec

    def group(self, ns: NamespaceSpec, name: str) -> GroupSpec:
        spec = ns.groups.get(name)
        if spec is None:
            raise GroupNotFound(
                f"consumer group {name!r} does not exist in namespace {ns.name!r}"
            )
        return spec

    def consumer_group(self, ns: NamespaceSpec, spec: GroupSpec) -> ConsumerGroup:
        """Map the desired-state group to the delivery engine's view of it (built once per
        group and state: receives and acks ask for it on every call)."""
        cached = self._engine_groups.get(id(spec))
        if cached is not None and cached[0] is spec:
            return cached[1]
        group = self._engine_group(ns, spec)
        self._engine_groups[id(spec)] = (spec, group)
        return group

    @staticmethod
    def _engine_group(ns: NamespaceSpec, spec: GroupSpec) -> ConsumerGroup:
        return ConsumerGroup(
            namespace=ns.name,
            name=spec.name,
            broadcast=spec.delivery is DeliveryMode.BROADCAST,
            fifo=spec.fifo,
            max_delivery_attempts=spec.max_delivery_attempts,  # both count deliveries
            retry_backoff_ms=tuple(int(s * 1000) for s in spec.retry_backoff.next_s),
        )
