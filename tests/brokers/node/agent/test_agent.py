"""The node agent against a real websocket server standing in for the control plane, and a real
node process started with --control-plane-url: hello, state push -> file -> reload -> ack,
refused states, heartbeats with metrics, reconnect with backoff after the server goes away."""
from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

import pytest
from websockets.asyncio.server import serve

from brokers.node.agent import AgentConfig, NodeAgent, persist_and_apply
from brokers.node.config import StateError, StateHolder
from brokers.node.metrics import NodeMetrics
from tests.brokers.node.conftest import default_state, free_port, start_node_process


class FakeControlPlane:
    """Records what agents send; pushes ``state`` after every hello."""

    def __init__(self, state: dict) -> None:
        self.state = state
        self.received: list[dict] = []
        self.hellos = 0
        self.port = free_port()
        self._server = None

    async def _handler(self, ws) -> None:
        async for raw in ws:
            msg = json.loads(raw)
            self.received.append(msg)
            if msg["type"] == "hello":
                self.hellos += 1
                await ws.send(json.dumps({"type": "state", "version": self.state["version"], "state": self.state}))

    async def start(self) -> None:
        self._server = await serve(self._handler, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    def of_type(self, kind: str) -> list[dict]:
        return [m for m in self.received if m["type"] == kind]


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def _holder(tmp_path: Path) -> StateHolder:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 0, "namespaces": {}}))
    holder = StateHolder(path)
    holder.reload()
    return holder


def test_persist_and_apply_goes_through_the_state_file(tmp_path: Path) -> None:
    holder = _holder(tmp_path)
    assert persist_and_apply(holder, default_state(version=3)) == 3
    assert holder.current.version == 3 and set(holder.current.namespaces) == {"ns1", "ns2"}
    assert json.loads(holder.path.read_text())["version"] == 3  # survives a restart
    bad = default_state(version=4)
    bad["namespaces"]["ns1"]["topics"]["orders"]["queues"] = 0
    with pytest.raises(StateError):
        persist_and_apply(holder, bad)
    assert holder.current.version == 3 and json.loads(holder.path.read_text())["version"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    agent = NodeAgent(AgentConfig("ws://x", 1, "t", backoff_initial_s=0.5, backoff_max_s=8),
                      holder=None, rng=random.Random(1))  # type: ignore[arg-type]
    delays = [agent._backoff(n) for n in range(10)]
    assert 0.25 <= delays[0] <= 0.5 and 4 <= delays[9] <= 8
    assert delays[3] > delays[0] and max(delays) <= 8


async def test_stop_is_not_lost_while_a_session_tears_down(tmp_path: Path) -> None:
    """Regression: a stop() arriving while the agent waited for its heartbeat task to end (the
    control plane had just closed) was swallowed, and the reconnect loop outlived the node's
    shutdown. A metrics report that takes a moment to cancel holds that window open."""
    async def slow_report() -> dict:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)  # e.g. finishing a disk scan before giving up
            raise
        return {}

    cp = FakeControlPlane(default_state(version=1))
    await cp.start()
    agent = NodeAgent(
        AgentConfig(f"ws://127.0.0.1:{cp.port}/", node_id=1, token="t", heartbeat_interval_s=0.01,
                    backoff_initial_s=0.01, backoff_max_s=0.02),
        _holder(tmp_path), NodeMetrics(), slow_report,
    )
    await agent.start()
    await _until(lambda: cp.of_type("heartbeat"))
    await cp.stop()
    await asyncio.sleep(0.1)  # the session has ended; its heartbeat task is still cancelling
    stopping = asyncio.create_task(agent.stop())
    done, _ = await asyncio.wait({stopping}, timeout=3)  # not wait_for: the old bug ate its cancel
    assert stopping in done, "agent.stop() did not return: its cancellation was swallowed"
    assert agent._task is None and not agent.connected.is_set()


async def test_agent_applies_acks_heartbeats_and_reconnects(tmp_path: Path) -> None:
    cp = FakeControlPlane(default_state(version=5))
    await cp.start()
    holder = _holder(tmp_path)
    agent = NodeAgent(
        AgentConfig(f"ws://127.0.0.1:{cp.port}/", node_id=9, token="tok", heartbeat_interval_s=0.05,
                    backoff_initial_s=0.05, backoff_max_s=0.2),
        holder, NodeMetrics(), lambda: {"boot_id": "b1", "node": {"connections": 42}},
    )
    await agent.start()
    try:
        await _until(lambda: cp.of_type("ack") and len(cp.of_type("metrics")) >= 2)
        hello = cp.of_type("hello")[0]
        assert hello == {"type": "hello", "node_id": 9, "token": "tok", "applied_version": 0}
        assert cp.of_type("ack")[0] == {"type": "ack", "version": 5} and holder.current.version == 5
        assert cp.of_type("heartbeat")[-1]["applied_version"] == 5
        assert cp.of_type("metrics")[-1]["payload"] == {"boot_id": "b1", "node": {"connections": 42}}

        # a refused state is nacked and the last good one stays
        bad = default_state(version=6)
        bad["namespaces"]["ns1"]["credentials"]["AK_ALL"]["secrets"] = []
        cp.state = bad
        await cp.stop()
        await _until(lambda: not agent.connected.is_set())
        await cp.start()  # same port: the agent reconnects on its own
        await _until(lambda: cp.hellos == 2 and cp.of_type("nack"))
        assert cp.of_type("hello")[-1]["applied_version"] == 5
        nack = cp.of_type("nack")[0]
        assert nack["version"] == 6 and "secrets" in nack["error"] and "sk-" not in nack["error"]
        assert holder.current.version == 5
    finally:
        await agent.stop()
        await cp.stop()


async def test_without_a_report_source_the_agent_sends_its_counters_in_the_ingest_format(
        tmp_path: Path) -> None:
    cp = FakeControlPlane(default_state(version=1))
    await cp.start()
    metrics = NodeMetrics()
    metrics.sent("ns1", "orders", 3, 300)
    metrics.throttle("ns1", "throttled")
    agent = NodeAgent(AgentConfig(f"ws://127.0.0.1:{cp.port}/", node_id=1, token="t",
                                  heartbeat_interval_s=0.05), _holder(tmp_path), metrics)
    await agent.start()
    try:
        await _until(lambda: len(cp.of_type("metrics")) >= 2)
        payloads = [m["payload"] for m in cp.of_type("metrics")]
        assert {p["boot_id"] for p in payloads} == {agent.boot_id}
        ns1 = payloads[-1]["namespaces"]["ns1"]
        assert ns1["topics"] == {"orders": {"messages_in": 3, "bytes_in": 300}}
        assert ns1["throttled_send"] == 1 and ns1["throttled_receive"] == 0
    finally:
        await agent.stop()
        await cp.stop()


async def test_a_failing_report_source_does_not_stop_heartbeats(tmp_path: Path) -> None:
    cp = FakeControlPlane(default_state(version=1))
    await cp.start()

    async def broken() -> dict:
        raise RuntimeError("boom")

    agent = NodeAgent(AgentConfig(f"ws://127.0.0.1:{cp.port}/", node_id=2, token="t",
                                  heartbeat_interval_s=0.05), _holder(tmp_path), NodeMetrics(), broken)
    await agent.start()
    try:
        await _until(lambda: len(cp.of_type("heartbeat")) >= 3)
        assert cp.of_type("metrics") == [] and agent.connected.is_set()
    finally:
        await agent.stop()
        await cp.stop()


async def test_node_process_serves_state_pushed_over_its_agent(tmp_path: Path) -> None:
    cp = FakeControlPlane(default_state(version=7))
    await cp.start()
    node = await asyncio.to_thread(
        start_node_process, tmp_path, {"version": 0, "namespaces": {}},
        extra_args=("--control-plane-url", f"ws://127.0.0.1:{cp.port}/", "--control-plane-node-id", "3",
                    "--heartbeat-interval", "0.1"),
        env={"MQ_NODE_TOKEN": "secret-token-value"},
    )
    try:
        await _until(lambda: cp.of_type("ack"), timeout=15)
        assert cp.of_type("hello")[0]["token"] == "secret-token-value"
        await asyncio.to_thread(node.wait_for_state_version, 7)
        assert json.loads(node.state_file.read_text())["version"] == 7
        # its metrics reports are in the ingest format, from the node's store and engine
        await _until(lambda: any("ns1" in m["payload"].get("namespaces", {})
                                 for m in cp.of_type("metrics")), timeout=15)
        report = [m for m in cp.of_type("metrics") if "ns1" in m["payload"]["namespaces"]][-1]["payload"]
        assert report["boot_id"] and report["node"]["disk_free_bytes"] > 0
        assert report["node"]["store"]["commitlog_max_offset"] >= 0
        assert set(report["namespaces"]) == {"ns1", "ns2"}
        assert report["namespaces"]["ns1"]["storage_bytes"] == 0
        assert report["namespaces"]["ns1"]["groups"]["g1"] == {"dlq_messages": 0, "topics": {}}
        assert "secret-token-value" not in node.log_text()
    finally:
        await cp.stop()
        assert await asyncio.to_thread(node.stop) == 0


class PatchingControlPlane(FakeControlPlane):
    """After the hello's full state, sends the frames queued in ``frames`` one at a time."""

    def __init__(self, state: dict) -> None:
        super().__init__(state)
        self.frames: asyncio.Queue[dict] = asyncio.Queue()

    async def _handler(self, ws) -> None:
        async def feed() -> None:
            while True:
                await ws.send(json.dumps(await self.frames.get()))

        feeder = asyncio.create_task(feed())
        try:
            await super()._handler(ws)
        finally:
            feeder.cancel()


async def test_state_increments_apply_on_the_applied_state_or_ask_for_a_full_one(tmp_path: Path) -> None:
    from brokers.node.agent.merge_patch import diff, fingerprint

    v1 = default_state(version=1)
    cp = PatchingControlPlane(v1)
    await cp.start()
    holder = _holder(tmp_path)
    agent = NodeAgent(AgentConfig(f"ws://127.0.0.1:{cp.port}/", node_id=1, token="t", heartbeat_interval_s=5),
                      holder)
    await agent.start()
    try:
        await _until(lambda: holder.current.version == 1)
        v2 = json.loads(json.dumps(v1))
        v2["version"] = 2
        v2["namespaces"]["ns1"]["topics"]["audit"] = dict(v2["namespaces"]["ns1"]["topics"]["orders"])
        del v2["namespaces"]["ns2"]
        await cp.frames.put({"type": "state.patch", "version": 2, "base_version": 1,
                             "patch": diff(v1, v2), "fingerprint": fingerprint(v2)})
        await _until(lambda: {"type": "ack", "version": 2} in cp.received)
        assert json.loads(holder.path.read_text()) == v2  # persisted: a restart keeps it
        assert "audit" in holder.current.namespaces["ns1"].topics and "ns2" not in holder.current.namespaces

        # based on a version the node does not have, or not producing what the sender had: resync
        v3 = dict(v2, version=3)
        await cp.frames.put({"type": "state.patch", "version": 3, "base_version": 1,
                             "patch": diff(v1, v3), "fingerprint": fingerprint(v3)})
        await cp.frames.put({"type": "state.patch", "version": 3, "base_version": 2,
                             "patch": diff(v2, v3), "fingerprint": fingerprint(v1)})
        await _until(lambda: len(cp.of_type("nack")) == 2)
        assert all(n["resync"] is True and n["version"] == 3 for n in cp.of_type("nack"))
        assert "based on version 1, this node has 2" in cp.of_type("nack")[0]["error"]
        assert holder.current.version == 2 and json.loads(holder.path.read_text()) == v2
    finally:
        await agent.stop()
        await cp.stop()
