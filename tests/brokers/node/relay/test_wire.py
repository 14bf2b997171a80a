"""Relay framing: frames survive any split of the byte stream, and one loop iteration's frames
leave in one write."""

from __future__ import annotations

import asyncio
from typing import Any

from brokers.node.relay.wire import CALL, REPLY, FrameConnection


class Recorder(FrameConnection):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[tuple[Any, ...]] = []

    def frame_received(self, frame: tuple[Any, ...]) -> None:
        self.frames.append(frame)


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return False


async def _roundtrip(chunk: int) -> tuple[list[tuple[Any, ...]], int]:
    sender, receiver = Recorder(), Recorder()
    transport = Transport()
    sender.connection_made(transport)  # type: ignore[arg-type]
    frames = [
        (CALL, 1, "SendMessage", (("x-mq-namespace", "ns1"), ("k-bin", b"\x00\x01")),
         "ipv4:127.0.0.1:5000", 2.5, b"\x0a" * 3000),
        (REPLY, 1, b""),
        (CALL, 2, "Telemetry", (), "ipv6:[::1]:1", None, None),
    ]
    for frame in frames:
        sender.send(frame)
    await asyncio.sleep(0)  # the flush runs once, after this iteration
    stream = b"".join(transport.writes)
    for i in range(0, len(stream), chunk):
        receiver.data_received(stream[i:i + chunk])
    assert receiver.frames == frames
    return receiver.frames, len(transport.writes)


def test_frames_survive_any_split_and_leave_in_one_write() -> None:
    for chunk in (1, 3, 4, 5, 7, 64, 4096, 1 << 20):
        _, writes = asyncio.run(_roundtrip(chunk))
        assert writes == 1
