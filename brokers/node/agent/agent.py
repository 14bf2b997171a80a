"""Keep one websocket open to the control plane; apply the desired state it pushes.

Protocol (JSON text frames; docs/fleet.md):

    agent -> cp  {"type": "hello", "node_id": 7, "token": "...", "applied_version": 12}
    cp -> agent  {"type": "state", "version": 13, "state": {...desired state...}}
    cp -> agent  {"type": "state.patch", "version": 14, "base_version": 13,
                  "patch": {...RFC 7386 merge patch...}, "fingerprint": "<sha256 of the result>"}
    agent -> cp  {"type": "ack", "version": 13}            (or "nack" with "error", and
                                                            "resync": true when a patch did not fit)
    agent -> cp  {"type": "heartbeat", "applied_version": 13}   every ``heartbeat_interval_s``
    agent -> cp  {"type": "metrics", "payload": {...}}          idem (docs/metrics-and-alerting.md §1)
    cp closes with 4401 when the token is refused (the agent keeps retrying with backoff).

A pushed state goes through the very path the state file takes: it is validated, written
atomically over ``--state-file`` and loaded by ``StateHolder.reload()``. The node therefore keeps
serving its last applied state while the control plane is away, and after a restart too.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from brokers.node.agent import merge_patch
from brokers.node.agent.admin import AdminHandler, dispatch
from brokers.node.config import StateError, StateHolder, parse_desired_state
from brokers.node.metrics import NodeMetrics

from .metrics_report import counters_report

log = logging.getLogger("brokers.node.agent")


@dataclass(frozen=True, slots=True)
class AgentConfig:
    url: str
    node_id: int
    token: str = field(repr=False)
    heartbeat_interval_s: float = 5.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    open_timeout_s: float = 10.0


def persist_and_apply(holder: StateHolder, doc: Any) -> int:
    """Validate ``doc``, write it atomically as the state file, load it through the holder.
    Returns the applied version; raises StateError (the file is then left untouched)."""
    state = parse_desired_state(doc)
    path = holder.path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(doc, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    holder.reload()
    if holder.current.version != state.version:
        raise StateError("$", holder.last_error or "state not applied")
    return state.version


#: What the agent calls for each metrics report: the report (docs/metrics-and-alerting.md §1),
#: or an awaitable of it (``MetricsReporter.report``).
ReportSource = Callable[[], "dict[str, Any] | Awaitable[dict[str, Any]]"]


def metrics_payload(metrics: NodeMetrics, boot_id: str, now: float | None = None) -> dict[str, Any]:
    """A counters-only report in the ingest format (used when the agent has no full reporter)."""
    return counters_report(metrics, boot_id, time.time() if now is None else now)


class _PatchMismatch(Exception):
    """A state increment that does not apply to what this node has: it needs a full snapshot."""


class NodeAgent:
    """``start()`` spawns the connection loop; ``stop()`` closes it. Never raises into the node."""

    def __init__(
        self,
        config: AgentConfig,
        holder: StateHolder,
        metrics: NodeMetrics | None = None,
        report: ReportSource | None = None,
        rng: random.Random | None = None,
        admin: AdminHandler | None = None,
    ) -> None:
        self.config = config
        self.holder = holder
        self.metrics = metrics
        self.report = report  # the metrics report source; counters only without it
        self.boot_id = uuid.uuid4().hex  # metrics_payload's counters restart with the process
        self.rng = rng or random.Random()
        self.admin = admin  # answers admin.request frames (brokers/node/agent/admin.py)
        self.connected = asyncio.Event()
        self.connections = 0
        self._task: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="node-agent")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # gather() lets our own cancellation (node shutdown) through, unlike a bare
            # ``except CancelledError`` around ``await task``.
            await asyncio.gather(task, return_exceptions=True)

    def _backoff(self, attempt: int) -> float:
        """Equal jitter: uniform in [cap/2, cap], cap = min(max, initial * 2**attempt)."""
        cap = min(self.config.backoff_max_s, self.config.backoff_initial_s * (2 ** min(attempt, 30)))
        return self.rng.uniform(cap / 2, cap)

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                async with connect(
                    self.config.url, open_timeout=self.config.open_timeout_s, max_size=64 * 1024 * 1024,
                    ping_interval=20, ping_timeout=20,
                ) as ws:
                    self._ws = ws
                    attempt = 0
                    await self._session(ws)
            except asyncio.CancelledError:
                raise
            except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI) as exc:
                log.warning("control plane unreachable or closed (%s)", type(exc).__name__)
            except Exception:  # noqa: BLE001 - the agent must never take the node down
                log.exception("agent session failed")
            finally:
                self._ws = None
                self.connected.clear()
            delay = self._backoff(attempt)
            attempt += 1
            await asyncio.sleep(delay)

    async def _session(self, ws: ClientConnection) -> None:
        await ws.send(json.dumps({
            "type": "hello", "node_id": self.config.node_id, "token": self.config.token,
            "applied_version": self.holder.current.version,
        }))
        self.connections += 1
        self.connected.set()
        log.info("connected to control plane %s", self.config.url)
        beat = asyncio.create_task(self._heartbeats(ws))
        try:
            async for raw in ws:
                await self._handle(ws, raw)
        finally:
            beat.cancel()
            # Not ``except CancelledError`` around ``await beat``: that would also swallow a
            # cancellation of this task (agent.stop) arriving meanwhile, and the reconnect
            # loop would outlive the node's shutdown.
            await asyncio.gather(beat, return_exceptions=True)

    async def _handle(self, ws: ClientConnection, raw: str | bytes) -> None:
        try:
            msg = json.loads(raw)
        except ValueError:
            log.warning("ignoring a frame that is not JSON")
            return
        kind = msg.get("type") if isinstance(msg, dict) else None
        if kind in ("state", "state.patch"):
            version = msg.get("version")
            try:
                doc = msg.get("state") if kind == "state" else self._patched(msg)
            except _PatchMismatch as exc:
                log.warning("state increment %s does not fit (%s): asking for a full snapshot", version, exc)
                await ws.send(json.dumps({"type": "nack", "version": version, "error": str(exc), "resync": True}))
                return
            try:
                applied = persist_and_apply(self.holder, doc)
            except StateError as exc:
                log.error("pushed state version %s refused: %s", version, exc)
                await ws.send(json.dumps({"type": "nack", "version": version, "error": str(exc)}))
                return
            await ws.send(json.dumps({"type": "ack", "version": applied}))
        elif kind == "admin.request":
            dispatch(ws, msg, self.admin)
        elif kind == "error":
            log.error("control plane refused us: %s", msg.get("code"))

    def _patched(self, msg: dict[str, Any]) -> Any:
        """The document a ``state.patch`` frame describes, built on the applied state file."""
        base = msg.get("base_version")
        if base != self.holder.current.version:
            raise _PatchMismatch(f"based on version {base}, this node has {self.holder.current.version}")
        try:
            current = json.loads(self.holder.path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise _PatchMismatch(f"cannot read the applied state: {type(exc).__name__}") from exc
        doc = merge_patch.apply(current, msg.get("patch"))
        if merge_patch.fingerprint(doc) != msg.get("fingerprint"):
            raise _PatchMismatch("the patched state differs from the control plane's")
        return doc

    async def _metrics_report(self) -> dict[str, Any] | None:
        """The report to send now, or None (no source, or it failed: logged, heartbeats go on)."""
        try:
            if self.report is not None:
                out = self.report()
                return await out if inspect.isawaitable(out) else out
            if self.metrics is not None:
                return metrics_payload(self.metrics, self.boot_id)
        except Exception:  # noqa: BLE001 - a metrics bug must not stop the heartbeats
            log.exception("building the metrics report failed")
        return None

    async def _heartbeats(self, ws: ClientConnection) -> None:
        while True:
            await ws.send(json.dumps({"type": "heartbeat", "applied_version": self.holder.current.version}))
            payload = await self._metrics_report()
            if payload is not None:
                await ws.send(json.dumps({"type": "metrics", "payload": payload}))
            await asyncio.sleep(self.config.heartbeat_interval_s)
