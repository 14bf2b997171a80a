"""The front-end worker process: connect to the core, serve gRPC, stop with the core.

Lifecycle:
- the worker dies with the core: the kernel sends it SIGKILL when its parent exits
  (``PR_SET_PDEATHSIG``), and it exits at once when the core's socket closes. A SIGKILLed node
  therefore leaves no worker holding its port;
- SIGTERM (sent by the core on a graceful stop) stops accepting calls and drains the calls in
  flight for the grace period, while the core still answers them;
- SIGINT is ignored: Ctrl-C reaches the whole process group, and the core decides the order.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import logging
import os
import signal
import sys
from pathlib import Path

import grpc

from brokers.node.eventloop import CHOICES as LOOP_CHOICES
from brokers.node.eventloop import run as run_on_loop
from brokers.node.grpc.serveroptions import add_port, server_options
from brokers.node.heap import freeze_startup_heap

from .frontend import CoreLink
from .wire import HELLO

_PR_SET_PDEATHSIG = 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m brokers.node.relay", description=__doc__)
    p.add_argument("--core-socket", type=Path, required=True)
    p.add_argument("--index", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls-cert", type=Path, default=None)
    p.add_argument("--tls-key", type=Path, default=None)
    p.add_argument("--max-message-bytes", type=int, required=True)
    p.add_argument("--grace", type=float, default=5.0)
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--event-loop", choices=LOOP_CHOICES, default="auto")
    return p.parse_args(argv)


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the socket's EOF still ends the worker
        pass


async def serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    lost: asyncio.Future[None] = loop.create_future()
    _, link = await loop.create_unix_connection(lambda: CoreLink(lost), str(args.core_socket))
    server = grpc.aio.server(options=server_options(args.max_message_bytes, reuseport=True))
    server.add_generic_rpc_handlers((link.handler(),))
    port = add_port(server, args.host, args.port, args.tls_cert, args.tls_key)
    await server.start()
    freeze_startup_heap()
    link.send((HELLO, args.index, port))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    stopping = loop.create_task(stop.wait())
    await asyncio.wait([lost, stopping], return_when=asyncio.FIRST_COMPLETED)
    if lost.done():
        # The core is gone: nothing can be answered any more, and a restarted node wants the port.
        os._exit(1)
    await server.stop(args.grace)
    link.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), stream=sys.stderr,
        format=f"%(asctime)s %(levelname)-7s %(name)s[worker {args.index}]: %(message)s",
    )
    return run_on_loop(serve(args), args.event_loop)  # type: ignore[no-any-return]
