"""A real MessageStore + DeliveryEngine in tmp_path, a fake clock, and the AdminService."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from brokers.node.admin import AdminService
from brokers.node.delivery import ConsumerGroup, DeliveryConfig, DeliveryEngine
from brokers.node.store import MessageStore, NewMessage, StoreConfig

T0_MS = 1_800_000_000_000


@dataclass
class Clock:
    now_s: float = T0_MS / 1000

    def __call__(self) -> float:
        return self.now_s

    def advance(self, ms: int) -> None:
        self.now_s += ms / 1000


@dataclass
class Session:  # the fields of brokers.node.grpc.clients.ClientSession the service reads
    client_id: str
    namespace: str
    group: str = ""
    last_seen: float = 0.0
    outbox: Any = None


@dataclass
class Registry:
    _sessions: dict[str, Session] = field(default_factory=dict)


@dataclass
class Node:
    store: MessageStore
    engine: DeliveryEngine
    clock: Clock
    admin: AdminService
    clients: Registry

    async def put(self, ns: str, topic: str, body: bytes, *, queue_id: int = 0, keys=(),
                  tag: str = "", props: dict[str, str] | None = None) -> str:
        res = await self.engine.put(NewMessage(
            topic=f"{ns}%{topic}", queue_id=queue_id, body=body, keys=tuple(keys), tag=tag,
            properties=props or {}, born_timestamp_ms=int(self.clock() * 1000) - 5,
            born_host="10.1.2.3:5555"))
        assert res.ok, res
        return res.append.msg_id

    async def receive(self, group: ConsumerGroup, topic: str, client: str = "c1",
                      n: int = 32, invisible_ms: int = 30_000):
        return await self.engine.receive(group=group, topic=f"{group.namespace}%{topic}",
                                         client_id=client, max_messages=n,
                                         invisible_ms=invisible_ms)

    async def ack(self, group: ConsumerGroup, topic: str, delivery) -> None:
        status = await self.engine.ack(group=group, topic=f"{group.namespace}%{topic}",
                                       receipt_handle=delivery.receipt_handle)
        assert status.name == "OK"

    async def advance(self, ms: int) -> None:
        self.clock.advance(ms)
        await self.engine.tick()

    async def call(self, op: str, ns: str, **args: Any) -> dict[str, Any]:
        return await self.admin.handle(op, ns, args)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    clock = Clock()
    store = await MessageStore.open(StoreConfig(
        root=tmp_path / "store", segment_bytes=1024 * 1024, cq_segment_entries=1024,
        durability="async", clock_ms=lambda: int(clock() * 1000)))
    engine = DeliveryEngine(store, state_path=tmp_path / "delivery.sqlite3", clock=clock,
                            config=DeliveryConfig())
    await engine.start(background=False)
    clients = Registry()
    yield Node(store, engine, clock, AdminService(store, engine, clients=clients), clients)
    await engine.stop()
    await store.close()
