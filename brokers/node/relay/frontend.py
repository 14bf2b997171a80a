"""A gRPC front-end worker: terminates the clients' HTTP/2 and relays every call to the core.

It registers one pass-through handler per method of ``apache.rocketmq.v2.MessagingService``
(request and response stay bytes: grpc's (de)serializers are skipped), forwards the call with its
headers, peer and deadline, and answers with what the core sends back. It keeps no state of its
own, so any worker can take any call; the kernel spreads connections over the workers that share
the port (SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import grpc
from rocketmq.grpc_protocol import service_pb2 as spb

from .wire import CALL, CANCEL, END, FAIL, IN, IN_END, ITEM, REPLY, Frame, FrameConnection

SERVICE: Final = "apache.rocketmq.v2.MessagingService"
_CORE_GONE: Final = (FAIL, 0, "UNAVAILABLE", "broker node core unavailable")


def _metadata(context: grpc.aio.ServicerContext) -> tuple[tuple[str, Any], ...]:
    return tuple((m[0], m[1]) for m in context.invocation_metadata() or ())


class CoreLink(FrameConnection):
    """The worker's one connection to the core, multiplexing every call by id."""

    def __init__(self, lost: asyncio.Future[None]) -> None:
        super().__init__()
        self._lost = lost
        self._ids = itertools.count(1)
        self._replies: dict[int, asyncio.Future[Frame]] = {}
        self._streams: dict[int, asyncio.Queue[Frame]] = {}

    def frame_received(self, frame: Frame) -> None:
        call_id = frame[1]
        fut = self._replies.get(call_id)
        if fut is not None:
            if not fut.done():
                fut.set_result(frame)
            return
        stream = self._streams.get(call_id)
        if stream is not None:
            stream.put_nowait(frame)

    def closed(self, exc: Exception | None) -> None:
        for fut in self._replies.values():
            if not fut.done():
                fut.set_result(_CORE_GONE)
        for stream in self._streams.values():
            stream.put_nowait(_CORE_GONE)
        if not self._lost.done():
            self._lost.set_result(None)

    # -- the pass-through handlers -----------------------------------------------------------
    def handler(self) -> grpc.GenericRpcHandler:
        handlers: dict[str, grpc.RpcMethodHandler] = {}
        for method in spb.DESCRIPTOR.services_by_name["MessagingService"].methods:
            name = method.name
            if method.client_streaming:
                handlers[name] = grpc.stream_stream_rpc_method_handler(self._bidi(name))
            elif method.server_streaming:
                handlers[name] = grpc.unary_stream_rpc_method_handler(self._server_stream(name))
            else:
                handlers[name] = grpc.unary_unary_rpc_method_handler(self._unary(name))
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    def _unary(self, method: str) -> Callable[..., Any]:
        async def relay(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            call_id = next(self._ids)
            fut: asyncio.Future[Frame] = self._loop.create_future()
            self._replies[call_id] = fut
            self._call(call_id, method, context, request)
            try:
                frame = await fut
            except asyncio.CancelledError:
                self.send((CANCEL, call_id))
                raise
            finally:
                del self._replies[call_id]
            if frame[0] == REPLY:
                return frame[2]  # type: ignore[no-any-return]
            await context.abort(grpc.StatusCode[frame[2]], frame[3])
            raise AssertionError("abort returned")  # pragma: no cover

        return relay

    def _server_stream(self, method: str) -> Callable[..., Any]:
        async def relay(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            call_id, inbox = self._open(method, context, request)
            async for item in self._responses(call_id, inbox, context):
                yield item

        return relay

    def _bidi(self, method: str) -> Callable[..., Any]:
        async def relay(requests: AsyncIterator[bytes],
                        context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
            call_id, inbox = self._open(method, context, None)
            pump = self._loop.create_task(self._pump_requests(call_id, requests))
            try:
                async for item in self._responses(call_id, inbox, context):
                    yield item
            finally:
                pump.cancel()

        return relay

    def _open(self, method: str, context: grpc.aio.ServicerContext,
              request: bytes | None) -> tuple[int, asyncio.Queue[Frame]]:
        call_id = next(self._ids)
        inbox: asyncio.Queue[Frame] = asyncio.Queue()
        self._streams[call_id] = inbox
        self._call(call_id, method, context, request)
        return call_id, inbox

    def _call(self, call_id: int, method: str, context: grpc.aio.ServicerContext,
              request: bytes | None) -> None:
        """Send the CALL frame: what the core's ``RelayedContext`` answers from, and the request."""
        self.send((CALL, call_id, method, _metadata(context), context.peer(),
                   context.time_remaining(), request))

    async def _responses(self, call_id: int, inbox: asyncio.Queue[Frame],
                         context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        """Yield the core's ITEM frames until END; FAIL ends the call with its status. A call
        that ends here early (the client left, the deadline passed) is cancelled at the core."""
        finished = False
        try:
            while True:
                frame = await inbox.get()
                kind = frame[0]
                if kind == ITEM:
                    yield frame[2]
                elif kind == END:
                    finished = True
                    return
                else:
                    finished = True
                    await context.abort(grpc.StatusCode[frame[2]], frame[3])
        finally:
            del self._streams[call_id]
            if not finished:
                self.send((CANCEL, call_id))

    async def _pump_requests(self, call_id: int, requests: AsyncIterator[bytes]) -> None:
        try:
            async for message in requests:
                self.send((IN, call_id, message))
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the client's half of the stream broke: it ends
            pass
        self.send((IN_END, call_id))
