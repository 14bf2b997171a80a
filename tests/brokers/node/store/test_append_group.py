"""Single appends of one loop iteration share one writer request and one future
(``AppendGroup``): results stay per message, and cancelling one appender cancels only it."""

from __future__ import annotations

import asyncio

import pytest

from brokers.node.store import AppendResult, AppendStatus, MessageStore, NewMessage, StoreConfig

pytestmark = pytest.mark.asyncio
T = "ns1%orders"


async def test_concurrent_appends_get_their_own_results_in_order(config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    batches_before = store.writer.batches
    results = await asyncio.gather(*(store.append(NewMessage(T, i % 2, b"m%d" % i)) for i in range(50)))
    assert all(r.status is AppendStatus.OK for r in results)
    assert [r.queue_offset for r in results[0::2]] == list(range(25))
    assert [r.queue_offset for r in results[1::2]] == list(range(25))
    offsets = [r.commitlog_offset for r in results]
    assert offsets == sorted(offsets) and len(set(offsets)) == 50
    assert store.writer.batches - batches_before <= 2  # one request for the whole iteration
    for r in results[:5]:
        got = await store.get_by_id(r.msg_id)
        assert got is not None and got.commitlog_offset == r.commitlog_offset
    await store.close()


async def test_cancelling_one_appender_leaves_the_others_of_its_group(config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    tasks = [asyncio.create_task(store.append(NewMessage(T, 0, b"m%d" % i))) for i in range(10)]
    await asyncio.sleep(0)  # every task has joined the group and awaits its shared future
    tasks[3].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[3], asyncio.CancelledError)
    others = [r for i, r in enumerate(done) if i != 3]
    assert all(isinstance(r, AppendResult) and r.ok for r in others)
    # The cancelled append was already queued: it is written, the others keep their order.
    assert [r.queue_offset for r in others] == [0, 1, 2, 4, 5, 6, 7, 8, 9]  # type: ignore[union-attr]
    assert store.queue_bounds(T, 0) == (0, 10)
    await store.close()


async def test_timeout_on_one_append_does_not_cancel_the_group(config: StoreConfig) -> None:
    store = await MessageStore.open(config)

    async def impatient() -> None:
        async with asyncio.timeout(0):
            await store.append(NewMessage(T, 0, b"late"))

    patient = [store.append(NewMessage(T, 0, b"m%d" % i)) for i in range(5)]
    done = await asyncio.gather(impatient(), *patient, return_exceptions=True)
    assert isinstance(done[0], TimeoutError)
    assert all(isinstance(r, AppendResult) and r.ok for r in done[1:])
    await store.close()


async def test_appends_made_just_before_close_are_written(config: StoreConfig) -> None:
    store = await MessageStore.open(config)
    pending = [asyncio.create_task(store.append(NewMessage(T, 0, b"m%d" % i))) for i in range(5)]
    await asyncio.sleep(0)  # joined the group; the group is not submitted yet
    await store.close()
    assert all(r.ok for r in await asyncio.gather(*pending))
    store = await MessageStore.open(config)
    assert store.queue_bounds(T, 0) == (0, 5)
    await store.close()


async def test_append_result_keeps_the_dataclass_surface() -> None:
    r = AppendResult(AppendStatus.OK, "00000000000000000000000A", 10, 3, 7)
    assert (r.status, r.msg_id, r.commitlog_offset, r.queue_offset, r.store_timestamp_ms, r.detail, r.ok) == (
        AppendStatus.OK, "00000000000000000000000A", 10, 3, 7, "", True)
    fast = tuple.__new__(AppendResult, (AppendStatus.OK, None, 10, 3, 7, "", 0))  # the writer's form
    assert fast == r and hash(fast) == hash(r) and repr(fast) == repr(r)
    refused = AppendResult(AppendStatus.DISK_FULL, detail="full")
    assert not refused.ok and refused.msg_id == "" and refused.commitlog_offset == -1
    with pytest.raises(AttributeError):
        r.status = AppendStatus.IO_ERROR  # type: ignore[misc]
