"""Connected clients as seen through Telemetry streams, Settings and heartbeats.

Keyed by ``x-mq-client-id`` from the stream metadata (a rebuilt stream may send no Settings for
minutes, protocol doc G15). Holds the outbound queue of each open stream so the server can push
commands (orphaned-transaction checks) to a producer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from rocketmq.grpc_protocol import definition_pb2 as pb
from rocketmq.grpc_protocol import service_pb2 as spb


@dataclass(slots=True)
class ClientSession:
    client_id: str
    namespace: str
    client_type: int = pb.CLIENT_TYPE_UNSPECIFIED
    group: str = ""
    #: Bare topic names this producer declared in its Settings.
    topics: set[str] = field(default_factory=set)
    #: Frames to write on the client's open Telemetry stream; ``None`` ends the stream.
    outbox: asyncio.Queue[spb.TelemetryCommand | None] | None = None
    last_seen: float = 0.0


class ClientRegistry:
    """In-memory; one event loop. Forgotten on NotifyClientTermination or stream end."""

    def __init__(self) -> None:
        self._sessions: dict[str, ClientSession] = {}

    def get(self, client_id: str) -> ClientSession | None:
        return self._sessions.get(client_id)

    def touch(self, client_id: str, namespace: str, now: float) -> ClientSession:
        session = self._sessions.get(client_id)
        if session is None or session.namespace != namespace:
            session = ClientSession(client_id=client_id, namespace=namespace)
            self._sessions[client_id] = session
        session.last_seen = now
        return session

    def forget(self, client_id: str) -> None:
        self._sessions.pop(client_id, None)

    def detach_stream(
        self, client_id: str, outbox: asyncio.Queue[spb.TelemetryCommand | None], now: float
    ) -> None:
        session = self._sessions.get(client_id)
        if session is not None and session.outbox is outbox:
            session.outbox = None
            session.last_seen = now

    def close_streams(self) -> None:
        """End every open Telemetry stream (node shutdown)."""
        for session in self._sessions.values():
            if session.outbox is not None:
                session.outbox.put_nowait(None)

    def expire(self, now: float, idle_s: float) -> list[str]:
        """Forget clients with no open Telemetry stream and no heartbeat for ``idle_s``
        (crashed clients never send NotifyClientTermination); returns their ids."""
        gone = [
            cid for cid, s in self._sessions.items()
            if s.outbox is None and now - s.last_seen > idle_s
        ]
        for cid in gone:
            del self._sessions[cid]
        return gone

    def push(self, client_id: str, command: spb.TelemetryCommand) -> bool:
        """Queue ``command`` on the client's open stream; False if it has none."""
        session = self._sessions.get(client_id)
        if session is None or session.outbox is None:
            return False
        session.outbox.put_nowait(command)
        return True

    def producers_of(self, namespace: str, topic: str) -> list[ClientSession]:
        return [
            s for s in self._sessions.values()
            if s.namespace == namespace and s.outbox is not None
            and s.client_type == pb.PRODUCER and topic in s.topics
        ]

    def __len__(self) -> int:
        return len(self._sessions)
