"""The core's end of the relay: runs the servicer's method handlers for calls that front-end
workers received, exactly as grpc.aio would have run them in this process.

Each call gets a ``RelayedContext`` carrying what the worker's ``ServicerContext`` said (headers,
peer, time remaining): the only context the handlers use. Requests arrive as the client's bytes
and are parsed here with the method's own deserializer; responses are serialized here, so the
workers never parse a message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc

from .wire import CALL, CANCEL, END, FAIL, HELLO, IN, IN_END, ITEM, REPLY, Frame, FrameConnection

log = logging.getLogger("brokers.node.relay")
_MAX_SOCKET_PATH = 100


class RelayedContext:
    """The part of ``grpc.aio.ServicerContext`` the handlers read, for a relayed call."""

    __slots__ = ("_deadline", "_metadata", "_peer")

    def __init__(self, metadata: tuple[tuple[str, Any], ...], peer: str,
                 time_remaining: float | None) -> None:
        self._metadata = metadata
        self._peer = peer
        self._deadline = None if time_remaining is None else time.monotonic() + time_remaining

    def invocation_metadata(self) -> tuple[tuple[str, Any], ...]:
        return self._metadata

    def peer(self) -> str:
        return self._peer

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())


class _ClientStream:
    """The request iterator of a client-streaming call, fed by IN / IN_END frames."""

    def __init__(self, deserialize: Callable[[bytes], Any] | None) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._deserialize = deserialize

    def put(self, message: bytes | None) -> None:
        self._queue.put_nowait(message)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            message = await self._queue.get()
            if message is None:
                return
            yield self._deserialize(message) if self._deserialize else message


class _WorkerSession(FrameConnection):
    """One worker's connection: a task per relayed call."""

    def __init__(self, core: RelayCore) -> None:
        super().__init__()
        self.core = core
        self.calls: dict[int, asyncio.Task[None]] = {}
        self.streams: dict[int, _ClientStream] = {}

    def frame_received(self, frame: Frame) -> None:
        kind = frame[0]
        if kind == CALL:
            self._start(frame)
        elif kind == IN or kind == IN_END:
            stream = self.streams.get(frame[1])
            if stream is not None:
                stream.put(frame[2] if kind == IN else None)
        elif kind == CANCEL:
            task = self.calls.get(frame[1])
            if task is not None:
                task.cancel()
        elif kind == HELLO:
            self.core.worker_ready(frame[1], frame[2])

    def closed(self, exc: Exception | None) -> None:
        for task in list(self.calls.values()):
            task.cancel()
        self.core.sessions.discard(self)

    def _start(self, frame: Frame) -> None:
        _, call_id, method, metadata, peer, remaining, request = frame
        handler = self.core.handlers.get(method)
        if handler is None:
            self.send((FAIL, call_id, "UNIMPLEMENTED", "Method not found!"))
            return
        context = RelayedContext(metadata, peer, remaining)
        if handler.unary_unary is not None:
            coro = self._unary(call_id, handler, request, context)
        elif handler.unary_stream is not None:
            coro = self._server_stream(call_id, handler, request, context)
        else:
            stream = self.streams[call_id] = _ClientStream(handler.request_deserializer)
            coro = self._bidi(call_id, handler, stream, context)
        task = asyncio.get_running_loop().create_task(coro)
        self.calls[call_id] = task
        task.add_done_callback(lambda _t: self._finished(call_id))

    def _finished(self, call_id: int) -> None:
        self.calls.pop(call_id, None)
        self.streams.pop(call_id, None)

    async def _unary(self, call_id: int, handler: grpc.RpcMethodHandler, request: bytes,
                     context: RelayedContext) -> None:
        try:
            message = _parse(handler, request)
            response = await handler.unary_unary(message, context)
            serialize = handler.response_serializer
            self.send((REPLY, call_id, serialize(response) if serialize else response))
        except Exception as exc:  # noqa: BLE001 - what grpc.aio does with a raising handler
            self._fail(call_id, exc)

    async def _server_stream(self, call_id: int, handler: grpc.RpcMethodHandler, request: bytes,
                             context: RelayedContext) -> None:
        try:
            message = _parse(handler, request)
            await self._pump(call_id, handler, handler.unary_stream(message, context))
        except Exception as exc:  # noqa: BLE001
            self._fail(call_id, exc)

    async def _bidi(self, call_id: int, handler: grpc.RpcMethodHandler, stream: _ClientStream,
                    context: RelayedContext) -> None:
        try:
            await self._pump(call_id, handler, handler.stream_stream(stream, context))
        except Exception as exc:  # noqa: BLE001
            self._fail(call_id, exc)

    async def _pump(self, call_id: int, handler: grpc.RpcMethodHandler,
                    responses: AsyncIterator[Any]) -> None:
        serialize = handler.response_serializer
        try:
            async for response in responses:
                self.send((ITEM, call_id, serialize(response) if serialize else response))
        finally:
            await responses.aclose()  # type: ignore[attr-defined]
        self.send((END, call_id))

    def _fail(self, call_id: int, exc: Exception) -> None:
        if isinstance(exc, _ParseError):
            self.send((FAIL, call_id, "INTERNAL", "Exception deserializing request!"))
            return
        log.error("relayed call failed", exc_info=exc)
        self.send((FAIL, call_id, "UNKNOWN", f"Unexpected {type(exc)}: {exc}"))


class _ParseError(Exception):
    pass


def _parse(handler: grpc.RpcMethodHandler, request: bytes) -> Any:
    deserialize = handler.request_deserializer
    if deserialize is None:
        return request
    try:
        return deserialize(request)
    except Exception as exc:
        raise _ParseError() from exc


class RelayCore:
    """Listens on a private Unix socket for the node's front-end workers."""

    def __init__(self, handlers: dict[str, grpc.RpcMethodHandler]) -> None:
        #: keyed by method name (``SendMessage``), as CALL frames name them
        self.handlers = handlers
        self.sessions: set[_WorkerSession] = set()
        self._server: asyncio.AbstractServer | None = None
        self._path: Path | None = None
        self._tmpdir: Path | None = None
        self._ready: dict[int, asyncio.Future[int]] = {}

    @property
    def socket_path(self) -> Path:
        assert self._path is not None
        return self._path

    async def start(self, directory: Path) -> Path:
        """Listen on ``directory/relay.sock`` (the node's data directory; a stale socket of a
        killed node is replaced), or in a fresh 0700 temporary directory when that path is too
        long for a Unix socket (~107 bytes). Returns the socket path; the socket is 0600."""
        path = directory / "relay.sock"
        if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="mq-node-relay-"))
            path = self._tmpdir / "relay.sock"
        path.unlink(missing_ok=True)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._session, str(path))
        os.chmod(path, 0o600)
        self._path = path
        return path

    def _session(self) -> _WorkerSession:
        session = _WorkerSession(self)
        self.sessions.add(session)
        return session

    def expect_worker(self, index: int) -> asyncio.Future[int]:
        """A future resolved with the port worker ``index`` serves, once it says so."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._ready[index] = fut
        return fut

    def worker_ready(self, index: int, port: int) -> None:
        fut = self._ready.pop(index, None)
        if fut is not None and not fut.done():
            fut.set_result(port)

    async def stop(self) -> None:
        for session in list(self.sessions):
            session.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        if self._path is not None:
            self._path.unlink(missing_ok=True)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
