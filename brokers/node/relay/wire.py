"""Frames between the node's core and its gRPC front-end workers, over a Unix socket.

A frame is a 4-byte big-endian length followed by a ``marshal``-encoded tuple whose first item is
its kind (below). Frames hold only ints, strs, bytes, tuples and None, which marshal encodes in C
without a schema. Both ends are processes of one node, started by it, talking over a socket
that only the node's user can open (0600, ``core.RelayCore.start``), so the peer is trusted.

Frames written during one event-loop iteration leave in one ``write`` (``FrameConnection.send``
schedules a flush): under load one syscall carries many calls' requests or replies.
"""

from __future__ import annotations

import asyncio
import marshal
from typing import Any, Final

#: worker -> core: ``(CALL, call_id, method, metadata, peer, time_remaining, request)``;
#: ``request`` is None for a client-streaming call, whose messages follow as IN frames.
CALL: Final = 1
#: worker -> core: ``(IN, call_id, message)`` / ``(IN_END, call_id)``: the client's stream.
IN: Final = 2
IN_END: Final = 3
#: worker -> core: ``(CANCEL, call_id)``: the client went away or the deadline passed.
CANCEL: Final = 4
#: worker -> core: ``(HELLO, worker_index, port)``: serving gRPC on ``port``.
HELLO: Final = 5
#: core -> worker: ``(REPLY, call_id, response)``: a unary call's response.
REPLY: Final = 10
#: core -> worker: ``(ITEM, call_id, response)`` / ``(END, call_id)``: a response stream.
ITEM: Final = 11
END: Final = 12
#: core -> worker: ``(FAIL, call_id, status_code_name, details)``: end the call with that gRPC
#: status (what grpc.aio answers when a handler raises).
FAIL: Final = 13

Frame = tuple[Any, ...]
_HEADER: Final = 4


class FrameConnection(asyncio.Protocol):
    """A framed, buffered duplex connection; subclasses implement ``frame_received``."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._inbuf = bytearray()
        self._outbuf: list[bytes] = []
        self._flush_pending = False
        self._loop = asyncio.get_running_loop()

    # -- asyncio.Protocol --------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self._inbuf
        buf += data
        end = len(buf)
        pos = 0
        view = memoryview(buf)
        try:
            while end - pos >= _HEADER:
                size = int.from_bytes(view[pos:pos + _HEADER], "big")
                if end - pos - _HEADER < size:
                    break
                start = pos + _HEADER
                frame = marshal.loads(view[start:start + size])
                pos = start + size
                self.frame_received(frame)
        finally:
            view.release()
            del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.closed(exc)

    # -- to override -------------------------------------------------------------------------
    def frame_received(self, frame: Frame) -> None:
        raise NotImplementedError

    def closed(self, exc: Exception | None) -> None:
        """The peer went away (or we closed)."""

    # -- sending -----------------------------------------------------------------------------
    def send(self, frame: Frame) -> None:
        """Queue a frame; everything queued in this loop iteration is written together."""
        data = marshal.dumps(frame)
        self._outbuf.append(len(data).to_bytes(_HEADER, "big"))
        self._outbuf.append(data)
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        out, self._outbuf = self._outbuf, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def close(self) -> None:
        if self.transport is not None:
            self._flush()
            self.transport.close()
