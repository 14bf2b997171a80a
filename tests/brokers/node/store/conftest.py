"""Shared fixtures for the storage-engine tests: tiny segments in tmp_path, a fake clock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from brokers.node.store import StoreConfig


@dataclass
class FakeClock:
    now_ms: int = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        self.now_ms += ms


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config(tmp_path: Path, clock: FakeClock) -> StoreConfig:
    return StoreConfig(root=tmp_path / "node", segment_bytes=8 * 1024, cq_segment_entries=32,
                       durability="sync", clock_ms=clock)
