"""StateStore: offsets, receipts, timers and half messages survive restarts (real SQLite)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from brokers.node.store.state import InflightBatch, StateStore

pytestmark = pytest.mark.asyncio


async def open_state(tmp_path: Path) -> StateStore:
    return await StateStore.open(tmp_path / "state.db", durable=True, clock_ms=lambda: 1000)


async def test_everything_survives_a_restart(tmp_path: Path) -> None:
    st = await open_state(tmp_path)
    await st.commit_offset("g1", "ns%t", 0, 42)
    await st.commit_offset("g1", "ns%t", 0, 43)
    await st.put_inflight(InflightBatch("b1", "g1", "ns%t", 1, (5, 6, 7), (500, 600, 700), 2000))
    await st.ack("b1", 1)
    await st.schedule_timer(900, 5000)
    await st.schedule_timer(800, 3000)
    await st.put_half("tx1", 1000, "pg", "ns%t")
    await st.close()
    st = await open_state(tmp_path)
    assert st.get_offset("g1", "ns%t", 0) == 43 and st.get_offset("g1", "ns%t", 9) is None
    b = st.get_inflight("b1")
    assert b is not None and b.acked == frozenset({1}) and b.pending() == [0, 2]
    assert [t.commitlog_offset for t in st.due_timers(4000)] == [800]
    assert [t.commitlog_offset for t in st.due_timers(9000)] == [800, 900]
    assert [h.txn_id for h in st.unresolved_halves(1000)] == ["tx1"]
    assert st.pins() == 500
    await st.close()


async def test_receipts_ack_and_change_invisible(tmp_path: Path) -> None:
    st = await open_state(tmp_path)
    await st.put_inflight(InflightBatch("b1", "g", "ns%t", 0, (1, 2), (10, 20), 100))
    assert [b.batch_id for b in st.due_inflight(99)] == []
    assert [b.batch_id for b in st.due_inflight(100)] == ["b1"]
    new_id = await st.change_invisible("b1", 0, 500)
    assert new_id is not None and new_id != "b1"
    assert st.get_inflight("b1").pending() == [1]  # type: ignore[union-attr]
    assert await st.change_invisible("b1", 0, 500) is None  # already moved
    assert await st.ack("b1", 1) is True and st.get_inflight("b1") is None
    assert await st.ack("b1", 1) is False
    assert [b.batch_id for b in st.due_inflight(200)] == []
    assert [b.queue_offsets for b in st.due_inflight(500)] == [(1,)]
    assert st.pins() == 10
    await st.close()
    st = await open_state(tmp_path)
    assert st.get_inflight(new_id) is not None and st.get_inflight("b1") is None
    await st.close()


async def test_concurrent_writes_share_commits(tmp_path: Path) -> None:
    st = await open_state(tmp_path)
    await asyncio.gather(*(st.commit_offset("g", "ns%t", q, q * 10) for q in range(500)))
    assert st.commits < 500  # batched: many writes per transaction
    await st.resolve_half("unknown")
    await st.close()
    st = await open_state(tmp_path)
    assert [st.get_offset("g", "ns%t", q) for q in (0, 250, 499)] == [0, 2500, 4990]
    await st.close()
