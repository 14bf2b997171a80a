"""A real MessageStore in tmp_path plus a DeliveryEngine driven by a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from brokers.node.delivery import DeliveryConfig, DeliveryEngine
from brokers.node.store import MessageStore, StoreConfig


@dataclass
class FakeClock:
    now_s: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now_s

    def advance(self, ms: int) -> None:
        self.now_s += ms / 1000


@dataclass
class Harness:
    root: Path
    clock: FakeClock
    config: DeliveryConfig
    store: MessageStore | None = None
    engine: DeliveryEngine | None = None
    checks: list = field(default_factory=list)

    async def open(self) -> DeliveryEngine:
        self.store = await MessageStore.open(StoreConfig(
            root=self.root / "store", segment_bytes=1024 * 1024, cq_segment_entries=1024,
            durability="async", clock_ms=lambda: int(self.clock() * 1000)))
        self.engine = DeliveryEngine(self.store, state_path=self.root / "delivery.sqlite3",
                                     clock=self.clock, config=self.config)
        await self.engine.start(background=False)
        return self.engine

    async def close(self) -> None:
        if self.engine is not None:
            await self.engine.stop()
        if self.store is not None:
            await self.store.close()
        self.engine = self.store = None

    async def restart(self) -> DeliveryEngine:
        await self.close()
        return await self.open()

    async def advance(self, ms: int) -> None:
        """Move the fake clock and run the background work that would have happened."""
        self.clock.advance(ms)
        assert self.engine is not None
        await self.engine.tick()
        for _ in range(3):  # let tasks the tick spawned (transaction checks) run
            await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def harness(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Harness]:
    h = Harness(tmp_path, clock, DeliveryConfig(transaction_check_after_ms=2000,
                                                transaction_check_interval_ms=1000,
                                                transaction_check_max_interval_ms=4000,
                                                transaction_max_checks=3))
    await h.open()
    yield h
    await h.close()
