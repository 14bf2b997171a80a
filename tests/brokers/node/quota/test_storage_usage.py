"""Per-namespace storage usage: record bytes from the consume queues, kept across restarts,
reduced by retention, and what the node's storage quota checks."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb

from brokers.node.config import NodeConfig
from brokers.node.server import Node
from brokers.node.store import AppendStatus, MessageStore, NewMessage, StoreConfig
from tests.brokers.node.conftest import ALL_ACCESS, RawClient, default_state, free_port, sign_headers

pytestmark = pytest.mark.asyncio
HOUR_MS = 3600 * 1000


def _config(tmp_path: Path, **kw) -> StoreConfig:  # type: ignore[no-untyped-def]
    kw = {"segment_bytes": 8 * 1024, "cq_segment_entries": 16, "durability": "sync", **kw}
    return StoreConfig(root=tmp_path / "store", **kw)


async def _fill(store: MessageStore, topic: str, n: int, queues: int = 2) -> list[int]:
    res = await store.append_many([NewMessage(topic, i % queues, b"%05d" % i + b"." * 500)
                                   for i in range(n)])
    assert all(r.status is AppendStatus.OK for r in res)
    return [r.commitlog_offset for r in res]


async def test_usage_is_record_bytes_per_namespace_and_survives_a_restart(tmp_path: Path) -> None:
    store = await MessageStore.open(_config(tmp_path, segment_bytes=1024 * 1024))
    offsets = await _fill(store, "a%orders", 5)
    a_end = store.end_offset
    await _fill(store, "b%%DLQ%billing", 3, queues=1)  # internal topics count for their namespace
    a_bytes = a_end - offsets[0]  # five adjacent records in one segment
    assert store.usage.namespace_bytes("a") == a_bytes > 5 * 505
    assert store.usage.namespace_bytes("a") + store.usage.namespace_bytes("b") == store.end_offset
    assert store.usage.namespace_bytes("nobody") == 0
    await store.close()

    store = await MessageStore.open(_config(tmp_path, segment_bytes=1024 * 1024))
    try:
        assert store.usage.by_namespace() == {"a": a_bytes, "b": store.end_offset - a_bytes}
        await _fill(store, "a%orders", 1)
        assert store.usage.namespace_bytes("a") == a_bytes + (a_bytes // 5)  # same-size records
    finally:
        await store.close()


async def test_retention_reduces_usage(tmp_path: Path) -> None:
    clock_ms = [1_700_000_000_000]
    store = await MessageStore.open(_config(tmp_path, retention_hours=1.0,
                                            clock_ms=lambda: clock_ms[0]))
    try:
        offsets = await _fill(store, "a%logs", 60)  # several 8 KiB segments
        record = offsets[1] - offsets[0]
        assert store.usage.namespace_bytes("a") == 60 * record
        clock_ms[0] += 2 * HOUR_MS
        await _fill(store, "a%logs", 4)
        report = await store.enforce_retention()
        assert report.segments_deleted > 0
        left = sum(hi - lo for lo, hi in (store.queue_bounds("a%logs", q) for q in (0, 1)))
        assert left < 64
        assert store.usage.namespace_bytes("a") == left * record
    finally:
        await store.close()


def _send_request(body: bytes) -> spb.SendMessageRequest:
    sp = pb.SystemProperties(message_id="01ABCDEF", message_type=pb.NORMAL)
    return spb.SendMessageRequest(messages=[pb.Message(
        topic=pb.Resource(resource_namespace=ALL_ACCESS[2], name="orders"), body=body,
        system_properties=sp)])


async def _send(node: Node, body: bytes) -> int:
    raw = RawClient(f"127.0.0.1:{node.grpc_port}")
    try:
        resp = await asyncio.to_thread(raw.stub.SendMessage, _send_request(body),
                                       metadata=sign_headers(*ALL_ACCESS), timeout=10)
        return int(resp.status.code)
    finally:
        raw.close()


async def test_storage_quota_counts_what_was_stored_before_a_restart(tmp_path: Path) -> None:
    state = default_state()
    state["namespaces"]["ns1"]["quotas"] = {"storage_bytes": 5000}
    (tmp_path / "state.json").write_text(json.dumps(state))

    def config() -> NodeConfig:
        return NodeConfig(state_file=tmp_path / "state.json", data_dir=tmp_path / "data",
                          grpc_port=free_port(), durability="async")

    node = Node(config())
    await node.start()
    try:
        assert await _send(node, b"x" * 2000) == pb.Code.OK
        assert await _send(node, b"x" * 2000) == pb.Code.OK
        used = node.store.usage.namespace_bytes("ns1")  # type: ignore[union-attr]
        assert 4000 < used < 5000
    finally:
        await node.stop()

    node = Node(config())  # a new process would see exactly this
    await node.start()
    try:
        assert node.store.usage.namespace_bytes("ns1") == used  # type: ignore[union-attr]
        assert await _send(node, b"x" * 2000) == pb.Code.PAYMENT_REQUIRED
        assert await _send(node, b"y" * 10) == pb.Code.OK  # what still fits is accepted
    finally:
        await node.stop()
