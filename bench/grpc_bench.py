"""Throughput and latency of the broker node's gRPC endpoint (prints figures; bounded runs).

    .venv/bin/python bench/grpc_bench.py [--quick] [--durability sync|async|both]
        [--only ceiling,store,single,batch,sdk,consume,paced]

Measures, with 1 KiB bodies, against a real ``python -m brokers.node`` process on 127.0.0.1:

* single-message SendMessage RPCs/s, driven by h2load (nghttp2-client) with a pre-encoded,
  signed gRPC frame (the signature covers only x-mq-date-time, so one header stays valid);
* batched SendMessage (16 messages per request), msgs/s, same driver;
* the official Python SDK producer (blocking ``send`` from several threads): msgs/s, p50/p99;
* receive only, from h2load (ReceiveMessage streams of up to 32, never acked): msgs/s;
* consume with ack, receive of 32 + one AckMessage per batch, draining the backlog: from the
  native client (bench/native/consume_ack.c, 4 connections x 2 loops; needs libnghttp2-dev) in
  a group of its own, then from 2 grpc.aio consumer processes of 2 loops each: msgs/s;
* send RPC latency at a steady 3k msgs/s from the native client (request i due at i/R over 8
  connections, latency counted from the due time): sends alone, the headline p99;
* the same with consumption running: send and send -> receive latency, the native client
  sending and receiving + acking in one process; then a grpc.aio sender with a consumer
  process of two receive loops (Python clients on 2 shared cores: compare with the native);
* the same at the lowest rate with 200 receives long-polling one group (20 connections x 10
  loops): what many waiting consumers cost per message;
* h2load ``--rps`` at 3k msgs/s: h2load's per-client timers fire together, so it sends bursts
  of ~32 requests every ~10 ms; its p99 is the time to drain such a burst, printed as that;
* the store alone (in-process ``append`` / ``append_many``), and the ceilings of grpcio on this
  machine, driven by h2load like the node: a bare generic handler returning fixed bytes (unary,
  and a ReceiveMessage stream of 32 pre-serialized ~1 KiB messages), and the generated servicer
  with an empty SendMessage (protobuf parse + response build).

Node phases use 8-16 h2load connections: the kernel spreads connections (not calls) over the
node's gRPC front-end workers, and with 4 connections all of them sometimes land on one worker
(seen: 103 % / 0 %); the CPU split per worker is printed to show it.

Every phase also prints the server's CPU time per message (all threads, /proc/<pid>/stat) and
its share of a core (the core process and its gRPC front-end workers, each shown): on a shared
machine that is steadier than wall-clock throughput. The load average is printed at the start
and the end. Figures are indicative, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import math
import multiprocessing
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _common import child_pids, cpu_seconds, pct  # noqa: E402
from native_consume import (  # noqa: E402
    consume_with_ack_native,
    paced_send_receive_native,
    timestamped_send_request,
)

from brokers.node.eventloop import run as run_on_loop  # noqa: E402
from brokers.node.relay.pool import worker_environment  # noqa: E402

AK, SK, NS = "AK_BENCH", "sk-bench-0123456789", "bench"
BODY = b"x" * 1024
SEND_PATH = "/apache.rocketmq.v2.MessagingService/SendMessage"
RECEIVE_PATH = "/apache.rocketmq.v2.MessagingService/ReceiveMessage"


def bench_state(rates: tuple[int, ...] = (3000, 500)) -> dict[str, Any]:
    # lat<rate>: paced sends consumed by glat<rate>; send<rate>: paced sends nobody consumes;
    # wait<rate>: paced sends consumed by gwait<rate>'s many waiting receives
    lat_topics = {f"{kind}{r}": {"queues": 4} for r in rates for kind in ("lat", "send", "wait")}
    lat_groups = {f"g{kind}{r}": {} for r in rates for kind in ("lat", "wait")}
    return {
        "version": 1,
        "namespaces": {NS: {
            "topics": {"bench": {"queues": 8}, **lat_topics},
            "groups": {"gb": {}, "gn": {}, "gr": {}, **lat_groups},
            "credentials": {AK: {"secrets": [SK], "acl": [
                {"resource": "topic", "pattern": "*", "actions": ["pub", "sub"]},
                {"resource": "group", "pattern": "*", "actions": ["sub"]},
            ]}},
        }},
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signed_headers() -> list[tuple[str, str]]:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    sig = hmac.new(SK.encode(), stamp.encode(), hashlib.sha1).hexdigest()
    return [
        ("x-mq-date-time", stamp), ("x-mq-client-id", f"bench@{os.getpid()}@0@x"),
        ("x-mq-namespace", NS), ("x-mq-request-id", str(uuid.uuid4())),
        ("authorization",
         f"MQv2-HMAC-SHA1 Credential={AK}, SignedHeaders=x-mq-date-time, Signature={sig}"),
    ]


class NodeProcess:
    #: Extra node command-line arguments (``--node-args``), e.g. ``--event-loop asyncio``.
    extra_args: tuple[str, ...] = ()

    def __init__(self, root: Path, durability: str, rates: tuple[int, ...] = (3000, 500)) -> None:
        self.root = root
        self.grpc_port, self.metrics_port = free_port(), free_port()
        (root / "state.json").write_text(json.dumps(bench_state(rates)))
        self.log = (root / "node.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "brokers.node", "--state-file", str(root / "state.json"),
             "--data-dir", str(root / "data"), "--grpc-port", str(self.grpc_port),
             "--metrics-port", str(self.metrics_port), "--durability", durability,
             "--log-level", "WARNING", *self.extra_args],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=1
                ) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("node did not become healthy")

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def delivered(self) -> int:
        """Messages delivered so far (the node's ``mq_messages_out_total``)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
            text = r.read().decode()
        return int(sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                       if line.startswith("mq_messages_out_total{")))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


# --------------------------------------------------------------------------- h2load driver


def send_request_bytes(n_messages: int) -> bytes:
    from rocketmq.grpc_protocol import definition_pb2 as pb
    from rocketmq.grpc_protocol import service_pb2 as spb

    msgs = [
        pb.Message(
            topic=pb.Resource(resource_namespace=NS, name="bench"), body=BODY,
            system_properties=pb.SystemProperties(
                message_id=f"01BENCH{i:08d}", message_type=pb.NORMAL, tag="bench",
                born_host="127.0.0.1",
            ),
        )
        for i in range(n_messages)
    ]
    return grpc_frame(spb.SendMessageRequest(messages=msgs).SerializeToString())


def grpc_frame(payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(payload)) + payload  # gRPC length-prefixed frame


def run_h2load(node: NodeProcess | EmptyServer, n_messages: int, requests: int, clients: int,
               streams: int, tmp: Path, *, duration_s: float | None = None,
               log_file: Path | None = None, path: str = SEND_PATH,
               body: bytes | None = None, rps: int | None = None) -> dict[str, float]:
    """``duration_s`` runs for that long instead of ``requests`` requests (h2load -D);
    ``log_file`` gets one line per request (start us, HTTP status, elapsed us). ``path`` and
    ``body`` (a gRPC frame) replace the default SendMessage of ``n_messages`` messages;
    ``n_messages`` then counts the messages each request moves (e.g. a receive stream's)."""
    frame = tmp / f"req-{uuid.uuid4().hex}.bin"
    frame.write_bytes(body if body is not None else send_request_bytes(n_messages))
    count = ["-D", f"{int(duration_s * 1000)}ms"] if duration_s else ["-n", str(requests)]
    cmd = ["h2load", f"http://{node.endpoint}{path}", "-d", str(frame), *count,
           "-c", str(clients), "-m", str(streams), "-t", "1",
           "-H", "content-type: application/grpc", "-H", "te: trailers"]
    if log_file is not None:
        cmd.append(f"--log-file={log_file}")
    if rps is not None:
        cmd.append(f"--rps={rps}")  # per client
    for k, v in signed_headers():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))  # type: ignore[union-attr]
    ok = int(re.search(r"(\d+) succeeded", out).group(1))  # type: ignore[union-attr]
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+(\S+)", out)
    return {"req_s": rps, "msgs_s": rps * n_messages, "succeeded": ok,
            "mean_latency": mean.group(1) if mean else "?"}  # type: ignore[dict-item]


# --------------------------------------------------------------------------- SDK producer


def sdk_producer(node: NodeProcess, total: int, threads: int) -> dict[str, float]:
    from rocketmq import ClientConfiguration, Credentials, Message, Producer

    producer = Producer(ClientConfiguration(node.endpoint, Credentials(AK, SK), namespace=NS),
                        ("bench",))
    producer.startup()
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        local = []
        for _ in range(n):
            m = Message()
            m.topic, m.body = "bench", BODY
            t0 = time.perf_counter()
            producer.send(m)
            local.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(local)

    start = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(total // threads,)) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - start
    producer.shutdown()
    latencies.sort()
    return {"msgs_s": len(latencies) / elapsed, "p50_ms": latencies[len(latencies) // 2] * 1e3,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3}


# --------------------------------------------------------------------------- raw aio client


def _stub(endpoint: str) -> tuple[Any, Any]:
    import grpc
    from rocketmq.grpc_protocol import service_pb2_grpc

    channel = grpc.aio.insecure_channel(endpoint)
    return channel, service_pb2_grpc.MessagingServiceStub(channel)


def _receive_request(batch: int, poll_s: int, topic: str = "bench", group: str = "gb") -> Any:
    from rocketmq.grpc_protocol import definition_pb2 as pb
    from rocketmq.grpc_protocol import service_pb2 as spb

    return spb.ReceiveMessageRequest(
        group=pb.Resource(resource_namespace=NS, name=group),
        message_queue=pb.MessageQueue(topic=pb.Resource(resource_namespace=NS, name=topic),
                                      id=-1),
        filter_expression=pb.FilterExpression(type=pb.TAG, expression="*"),
        batch_size=batch, invisible_duration={"seconds": 60},
        long_polling_timeout={"seconds": poll_s},
    )


async def _receive_and_ack(stub: Any, batch: int, poll_s: int = 2, topic: str = "bench",
                           group: str = "gb") -> list[Any]:
    from rocketmq.grpc_protocol import definition_pb2 as pb
    from rocketmq.grpc_protocol import service_pb2 as spb

    msgs = []
    async for frame in stub.ReceiveMessage(_receive_request(batch, poll_s, topic, group),
                                           metadata=signed_headers(), timeout=poll_s + 3):
        if frame.HasField("message"):
            msgs.append(frame.message)
    if msgs:
        await stub.AckMessage(spb.AckMessageRequest(
            group=pb.Resource(resource_namespace=NS, name=group),
            topic=pb.Resource(resource_namespace=NS, name=topic),
            entries=[spb.AckMessageEntry(message_id=m.system_properties.message_id,
                                         receipt_handle=m.system_properties.receipt_handle)
                     for m in msgs],
        ), metadata=signed_headers(), timeout=5)
    return msgs


async def consume_with_ack(endpoint: str, expected: int, loops: int,
                           limit_s: float) -> dict[str, float]:
    channel, stub = _stub(endpoint)
    got = 0
    start = time.perf_counter()

    async def loop() -> None:
        nonlocal got
        while got < expected and time.perf_counter() - start < limit_s:
            # Await first: `got += len(await ...)` reads `got` before the await, so concurrent
            # loops would overwrite each other's counts (it halved the figure with 2 loops).
            received = len(await _receive_and_ack(stub, 32, poll_s=1))
            got += received

    await asyncio.gather(*(loop() for _ in range(loops)))
    elapsed = time.perf_counter() - start
    await channel.close()
    return {"msgs_s": got / elapsed, "consumed": got}


async def _drain_with_ack(endpoint: str, loops: int, limit_s: float) -> tuple[int, float, float]:
    """Receive + ack until the backlog is empty; returns (messages, first, last receive time)."""
    channel, stub = _stub(endpoint)
    got, first, last = 0, math.inf, 0.0
    start = time.perf_counter()

    async def loop() -> None:
        nonlocal got, first, last
        empty = 0
        while empty < 2 and time.perf_counter() - start < limit_s:
            t0 = time.time()
            received = len(await _receive_and_ack(stub, 32, poll_s=1))
            if received:
                got, first, last, empty = got + received, min(first, t0), time.time(), 0
            else:
                empty += 1

    await asyncio.gather(*(loop() for _ in range(loops)))
    await channel.close()
    return got, first, last


def _consume_process(endpoint: str, loops: int, limit_s: float) -> tuple[int, float, float]:
    return run_on_loop(_drain_with_ack(endpoint, loops, limit_s))  # type: ignore[no-any-return]


def consume_in_processes(node: NodeProcess, processes: int, loops: int,
                         limit_s: float) -> dict[str, float]:
    """Drain the backlog with ``processes`` consumer processes (each its own connection, as
    separate consumers are: one Python client is the bottleneck long before the node) of
    ``loops`` receive+ack loops each; the rate is over first receive to last message."""
    ctx = multiprocessing.get_context("spawn")  # grpc does not survive fork()
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        results = list(pool.map(_consume_process, [node.endpoint] * processes,
                                [loops] * processes, [limit_s] * processes))
    total = sum(r[0] for r in results)
    span = max(r[2] for r in results) - min(r[1] for r in results)
    return {"msgs_s": total / span if span > 0 else 0.0, "consumed": total}


async def _latency_consumer(endpoint: str, topic: str, group: str, seconds: float) -> list[float]:
    """Receive + ack on ``topic`` for ``seconds``; each message's send->receive latency (its body
    starts with the sender's ``time.time()``)."""
    channel, stub = _stub(endpoint)
    e2e: list[float] = []
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < deadline:
            try:
                got = await _receive_and_ack(stub, 32, poll_s=1, topic=topic, group=group)
            except Exception:  # noqa: BLE001 - keep consuming
                await asyncio.sleep(0.05)
                continue
            now = time.time()
            e2e.extend(now - struct.unpack("<d", m.body[:8])[0] for m in got)

    await asyncio.gather(loop(), loop())
    await channel.close()
    return e2e


def _latency_consumer_process(endpoint: str, topic: str, group: str,
                              seconds: float) -> list[float]:
    return run_on_loop(_latency_consumer(endpoint, topic, group, seconds))  # type: ignore[no-any-return]


async def paced_latency(node: NodeProcess, rate: int, seconds: float) -> dict[str, float]:
    """Send at ``rate`` msgs/s (single-message RPCs); measure send RPC and end-to-end latency.

    The consumer runs in a process of its own: sharing the sender's process and loop put the
    Python client's own queueing into the end-to-end figure (p99 105 ms at 3k/s, against
    ~10 ms with the two apart)."""
    from rocketmq.grpc_protocol import definition_pb2 as pb
    from rocketmq.grpc_protocol import service_pb2 as spb

    topic, group = f"lat{rate}", f"glat{rate}"
    ctx = multiprocessing.get_context("spawn")  # grpc does not survive fork()
    pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx)
    settle_s = 2.0  # the consumer's interpreter starts and its first long poll is waiting
    consumer = asyncio.wrap_future(pool.submit(
        _latency_consumer_process, node.endpoint, topic, group, settle_s + seconds + 3.0))
    await asyncio.sleep(settle_s)
    channel, stub = _stub(node.endpoint)
    send_lat: list[float] = []
    failures: list[int] = []

    async def one(i: int) -> None:
        body = struct.pack("<d", time.time()) + BODY[8:]  # little-endian, as the native client
        req = spb.SendMessageRequest(messages=[pb.Message(
            topic=pb.Resource(resource_namespace=NS, name=topic), body=body,
            system_properties=pb.SystemProperties(message_id=f"01LAT{i:010d}",
                                                  message_type=pb.NORMAL))])
        t0 = time.perf_counter()
        try:
            await stub.SendMessage(req, metadata=headers, timeout=5)
        except Exception:  # noqa: BLE001 - counted, not fatal
            failures.append(i)
            return
        send_lat.append(time.perf_counter() - t0)

    headers = signed_headers()
    tasks = []
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    achieved = n / (time.perf_counter() - start)
    await channel.close()
    e2e = await consumer
    pool.shutdown()
    send_lat.sort()
    e2e.sort()

    def pct(xs: list[float], p: float) -> float:
        return xs[min(len(xs) - 1, int(len(xs) * p))] * 1e3 if xs else float("nan")

    return {"achieved_rate": achieved, "send_p50_ms": pct(send_lat, 0.5),
            "send_p99_ms": pct(send_lat, 0.99), "e2e_p50_ms": pct(e2e, 0.5),
            "e2e_p99_ms": pct(e2e, 0.99), "received": len(e2e), "failed": len(failures)}


# --------------------------------------------------------------------------- ceilings

_EMPTY_SERVER = """
import asyncio, sys, grpc
from rocketmq.grpc_protocol import service_pb2_grpc, service_pb2 as spb, definition_pb2 as pb
OK = pb.Status(code=pb.Code.OK, message="OK")
class S(service_pb2_grpc.MessagingServiceServicer):
    async def SendMessage(self, request, context):
        return spb.SendMessageResponse(status=OK, entries=[
            spb.SendResultEntry(status=OK, message_id=m.system_properties.message_id)
            for m in request.messages])
async def main():
    s = grpc.aio.server()
    service_pb2_grpc.add_MessagingServiceServicer_to_server(S(), s)
    s.add_insecure_port("127.0.0.1:" + sys.argv[1])
    await s.start()
    print("ready", flush=True)
    await s.wait_for_termination()
asyncio.run(main())
"""


_BARE_SERVER = """
import asyncio, sys, grpc
from rocketmq.grpc_protocol import service_pb2 as spb, definition_pb2 as pb
OK = pb.Status(code=pb.Code.OK, message="OK")
SEND = spb.SendMessageResponse(status=OK, entries=[spb.SendResultEntry(
    status=OK, message_id="0" * 24, transaction_id="0" * 24)]).SerializeToString()
MSG = pb.Message(topic=pb.Resource(resource_namespace="bench", name="bench"), body=b"x" * 1024,
    system_properties=pb.SystemProperties(message_id="0" * 24, receipt_handle="r" * 80,
        tag="t", message_type=pb.NORMAL, body_digest=pb.Digest(type=pb.MD5, checksum="A" * 32)))
FRAMES = [spb.ReceiveMessageResponse(status=OK).SerializeToString()] + [
    spb.ReceiveMessageResponse(message=MSG).SerializeToString()] * 32 + [
    spb.ReceiveMessageResponse(delivery_timestamp={"seconds": 1}).SerializeToString()]
async def send(request, context):
    return SEND
async def receive(request, context):
    for f in FRAMES:
        yield f
h = grpc.method_handlers_generic_handler("apache.rocketmq.v2.MessagingService", {
    "SendMessage": grpc.unary_unary_rpc_method_handler(send),
    "ReceiveMessage": grpc.unary_stream_rpc_method_handler(receive)})
async def main():
    s = grpc.aio.server()
    s.add_generic_rpc_handlers((h,))
    s.add_insecure_port("127.0.0.1:" + sys.argv[1])
    await s.start()
    print("ready", flush=True)
    await s.wait_for_termination()
asyncio.run(main())
"""


class EmptyServer:
    """A ceiling server: ``bare`` = generic handlers returning fixed bytes (no parsing at all;
    ReceiveMessage yields 32 pre-serialized ~1 KiB messages), else the generated servicer with an
    empty SendMessage (protobuf parse + response build): what grpcio alone costs per call."""

    def __init__(self, bare: bool = False, port: int | None = None) -> None:
        self.grpc_port = port or free_port()
        # grpc configured as the node's front-end workers configure it (GRPC_EXPERIMENTS)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BARE_SERVER if bare else _EMPTY_SERVER, str(self.grpc_port)],
            stdout=subprocess.PIPE, text=True, env=worker_environment(dict(os.environ)))
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


# --------------------------------------------------------------------------- store only


async def store_only(root: Path, durability: str, total: int) -> dict[str, float]:
    from brokers.node.store import MessageStore, NewMessage, StoreConfig

    store = await MessageStore.open(StoreConfig(root=root, durability=durability))  # type: ignore[arg-type]
    msg = NewMessage(topic=f"{NS}%bench", queue_id=0, body=BODY, tag="bench")
    start = time.perf_counter()
    sem = asyncio.Semaphore(128)

    async def one() -> None:
        async with sem:
            await store.append(msg)

    await asyncio.gather(*(one() for _ in range(total)))
    single = total / (time.perf_counter() - start)
    start = time.perf_counter()
    batches = total // 16
    for i in range(0, batches, 8):
        await asyncio.gather(*(store.append_many([msg] * 16) for _ in range(8)))
    batched = batches * 16 / (time.perf_counter() - start)
    await store.close()
    return {"single_appends_s": single, "batched16_msgs_s": batched}


# --------------------------------------------------------------------------- main


PHASES = ("ceiling", "store", "single", "batch", "sdk", "receive", "consume", "h2paced", "paced",
          "waiters")


class Cpu:
    """Server CPU over a phase (all threads, from /proc/<pid>/stat), printed per message: the
    node's core process plus its gRPC front-end workers (its child processes), each shown."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.children = child_pids(pid)

    def _sample(self) -> list[float]:
        return [cpu_seconds(p) for p in (self.pid, *self.children)]

    def __enter__(self) -> Cpu:
        self.s0, self.t0 = self._sample(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        spent = [b - a for a, b in zip(self.s0, self._sample())]
        self.core, self.per_worker = spent[0], spent[1:]
        self.cpu = sum(spent)
        self.wall = time.perf_counter() - self.t0

    def per(self, n: float, wall: float | None = None) -> str:
        """Per-message CPU, and the shares of a core over ``wall`` seconds (default: the whole
        phase; a drain passes its own span so that the idle tail does not dilute them)."""
        if not n or self.cpu != self.cpu:
            return "server CPU ?"
        wall = wall or self.wall
        split = ""
        if self.children:
            shares = "+".join(f"{100 * w / wall:.0f}" for w in self.per_worker)
            split = f" (core {100 * self.core / wall:.0f}%, workers {shares}%)"
        return (f"{self.cpu / n * 1e6:5.0f} us server CPU/msg, "
                f"server {100 * self.cpu / wall:3.0f}% of a core{split}")


def _ack_prefix(group: str, topic: str) -> bytes:
    """A serialized AckMessageRequest with group and topic only: the native client appends the
    entries."""
    from rocketmq.grpc_protocol import definition_pb2 as pb
    from rocketmq.grpc_protocol import service_pb2 as spb

    return spb.AckMessageRequest(group=pb.Resource(resource_namespace=NS, name=group),
                                 topic=pb.Resource(resource_namespace=NS, name=topic)
                                 ).SerializeToString()


def native_consume(node: NodeProcess, pid: int, tmp: Path, limit_s: float) -> None:
    """Drain the backlog in group ``gn`` (its own copy of every message) with the native
    receive+ack client, and print the rate over first receive to last message."""
    try:
        with Cpu(pid) as cpu:
            r = consume_with_ack_native(
                node.endpoint, signed_headers(),
                _receive_request(32, 1, group="gn").SerializeToString(),
                _ack_prefix("gn", "bench"), connections=4, loops=2, idle_stop=1,
                max_seconds=limit_s, tmp=tmp / "native")
    except RuntimeError as exc:  # no compiler or no libnghttp2-dev: say so, run the rest
        print(f"consume + ack   : native client skipped: {exc}", flush=True)
        return
    n = r["messages"]
    print(f"consume + ack   : {r['msgs_s']:8.0f} msgs/s ({n} msgs, native: 4 connections x 2 "
          f"loops x batch 32, one AckMessage per batch; {r['ack_failures']} ack failures, "
          f"{r['errors']} errors; client {r['cpu_s'] / max(n, 1) * 1e6:.1f} us CPU/msg)  "
          f"[{cpu.per(n, wall=r['last_message'] - r['first_receive'])}]", flush=True)


#: Connections the native paced sender spreads its requests over (round-robin): several
#: producers' worth, so that the kernel spreads them over the node's front-end workers.
PACED_SEND_CONNECTIONS = 8


def native_paced(server: NodeProcess | EmptyServer, pid: int, rate: int, seconds: float,
                 tmp: Path, *, consume: bool, label: str = "paced",
                 receive_loops: tuple[int, int] = (2, 2), topics: str = "lat") -> None:
    """Single sends at a steady ``rate`` msgs/s from the native client, latency counted from
    each request's due time; with ``consume`` the same process also receives + acks them
    (send -> receive latency) with ``receive_loops`` = (connections, loops per connection)
    long-polling receive loops, else it only sends (the send latency of the target).
    ``topics`` names the topic and group consumed (``bench_state``); sends alone go to
    ``send<rate>``, which nobody consumes."""
    kind = topics if consume else "send"
    topic, group = f"{kind}{rate}", f"g{kind}{rate}"
    send, offset = timestamped_send_request(NS, topic)
    try:
        with Cpu(pid) as cpu:
            r = paced_send_receive_native(
                server.endpoint, signed_headers(), send, offset,
                _receive_request(32, 1, topic=topic, group=group).SerializeToString(),
                _ack_prefix(group, topic), rate, seconds, tmp=tmp / "native",
                connections=receive_loops[0] if consume else 0, loops=receive_loops[1],
                send_connections=PACED_SEND_CONNECTIONS)
    except RuntimeError as exc:
        print(f"{label} {rate:5d}/s   : native client skipped: {exc}", flush=True)
        return

    def ms(key: str) -> str:
        return "?" if r[key] is None else f"{r[key]:.2f}"

    who = (f"{receive_loops[0] * receive_loops[1]} receive loops" if consume
           else "no consumers")
    line = (f"{label} {rate:5d}/s   : native, {who}: achieved "
            f"{r['achieved_rate']:.0f}/s, send p50 {ms('send_p50_ms')} ms p99 "
            f"{ms('send_p99_ms')} ms")
    if consume:
        line += (f"; send->receive p50 {ms('e2e_p50_ms')} ms p99 {ms('e2e_p99_ms')} ms max "
                 f"{ms('e2e_max_ms')} ms ({r['e2e_count']} of {r['sent']} received, "
                 f"{r['receives']} receives)")
    line += f" ({r['send_failures']} send failures)  [{cpu.per(max(r['sent'], 1))}]"
    print(line, flush=True)
    if r["send_failures"] and r.get("stderr"):
        print("    client said: " + r["stderr"].splitlines()[0], flush=True)


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def h2load_paced(server: NodeProcess | EmptyServer, rate: int, secs: float, tmp: Path,
                 label: str, pid: int) -> None:
    """Single-message sends paced by h2load (16 connections at rate/16 each): print achieved rate
    and send latency p50/p99 from h2load's per-request log. h2load's per-client timers fire
    together, so the load comes in bursts (~32 requests every ~10 ms at 3k/s): the p99 is the
    time the server takes to drain a burst, not the latency at a steady rate."""
    log = tmp / f"h2paced-{uuid.uuid4().hex}.log"
    with Cpu(pid) as cpu:
        r = run_h2load(server, 1, 0, 16, 8, tmp, duration_s=secs, log_file=log,
                       rps=max(1, rate // 16))
    lat = [int(line.split()[2]) / 1e6 for line in log.read_text().splitlines() if line.strip()]
    print(f"{label} {rate:5d}/s  : bursts, achieved {r['req_s']:.0f}/s, send p50 {pct(lat, 0.5):.2f} ms "
          f"p99 {pct(lat, 0.99):.2f} ms ({r['succeeded']:.0f} ok)  [{cpu.per(r['succeeded'])}]",
          flush=True)


def ceilings(tmp: Path, q: bool, rates: tuple[int, ...]) -> None:
    """grpcio alone on this machine: bare generic handlers (fixed bytes, no parsing) and the
    generated servicer with an empty SendMessage, driven by h2load like the node; the bare
    handler also from two processes sharing the port (what a node's two front-end workers could
    at most serve), and paced like the node's latency phase."""
    n = 5 if q else 10
    bare = EmptyServer(bare=True)
    try:
        for c, m in ((4, 32), (16, 16)):
            with Cpu(bare.proc.pid) as cpu:
                r = run_h2load(bare, 1, 0, c, m, tmp, duration_s=n)
            print(f"ceiling bare unary (-c{c} -m{m}) : {r['req_s']:8.0f} RPCs/s  "
                  f"[{cpu.per(r['succeeded'])}]", flush=True)
        for rate in rates:
            native_paced(bare, bare.proc.pid, rate, n, tmp, consume=False,
                         label="ceiling bare paced")
            h2load_paced(bare, rate, n, tmp, "ceiling bare h2load", bare.proc.pid)
        second = EmptyServer(bare=True, port=bare.grpc_port)  # SO_REUSEPORT: grpc's default
        try:
            c0 = cpu_seconds(second.proc.pid)
            with Cpu(bare.proc.pid) as cpu:
                r = run_h2load(bare, 1, 0, 16, 8, tmp, duration_s=n)
            both = cpu.cpu + cpu_seconds(second.proc.pid) - c0
            print(f"ceiling bare unary x2 procs  : {r['req_s']:8.0f} RPCs/s  "
                  f"[{both / r['succeeded'] * 1e6:5.0f} us server CPU/msg, server "
                  f"{100 * both / cpu.wall:3.0f}% of a core]", flush=True)
        finally:
            second.stop()
        recv = grpc_frame(_receive_request(32, 1).SerializeToString())
        with Cpu(bare.proc.pid) as cpu:
            r = run_h2load(bare, 32, 0, 4, 8, tmp, duration_s=n, path=RECEIVE_PATH, body=recv)
        print(f"ceiling bare stream of 32     : {r['msgs_s']:8.0f} msgs/s ({r['req_s']:.0f} "
              f"streams/s)  [{cpu.per(r['succeeded'] * 32)}]", flush=True)
    finally:
        bare.stop()
    empty = EmptyServer()
    try:
        with Cpu(empty.proc.pid) as cpu:
            r1 = run_h2load(empty, 1, 0, 4, 32, tmp, duration_s=n)
        print(f"ceiling empty servicer single : {r1['req_s']:8.0f} RPCs/s  "
              f"[{cpu.per(r1['succeeded'])}]", flush=True)
        with Cpu(empty.proc.pid) as cpu:
            r16 = run_h2load(empty, 16, 0, 4, 8, tmp, duration_s=n)
        print(f"ceiling empty servicer batch16: {r16['msgs_s']:8.0f} msgs/s  "
              f"[{cpu.per(r16['succeeded'] * 16)}]", flush=True)
    finally:
        empty.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true",
                    help="shorter phases: about 4-5 minutes for everything, both durabilities")
    ap.add_argument("--durability", choices=("sync", "async", "both"), default="both")
    ap.add_argument("--rates", type=int, nargs="+", default=[3000, 500],
                    help="paced send rates (msgs/s) for the latency phase")
    ap.add_argument("--only", default=",".join(PHASES),
                    help=f"comma-separated subset of {','.join(PHASES)}")
    ap.add_argument("--node-args", default="", help="extra node arguments, space-separated")
    args = ap.parse_args()
    NodeProcess.extra_args = tuple(args.node_args.split())
    if not shutil.which("h2load"):
        sys.exit("h2load not found: apt-get install -y nghttp2-client")
    q = args.quick
    only = set(args.only.split(","))
    modes = ("sync", "async") if args.durability == "both" else (args.durability,)
    tmp = Path(tempfile.mkdtemp(prefix="grpc-bench-"))
    print(f"start: {load()}", flush=True)
    secs = 5 if q else 15
    try:
        if "ceiling" in only:
            ceilings(tmp, q, tuple(args.rates))
        for mode in modes:
            print(f"== durability={mode} ==", flush=True)
            if "store" in only:
                # On the node's own loop (uvloop), so the protocol's cost is what differs.
                s = run_on_loop(store_only(tmp / f"store-{mode}", mode, 4000 if q else 20000))
                print(f"store only      : {s['single_appends_s']:8.0f} appends/s (128 in flight), "
                      f"{s['batched16_msgs_s']:8.0f} msgs/s in batches of 16", flush=True)
            node = NodeProcess(Path(tempfile.mkdtemp(dir=tmp)), mode, tuple(args.rates))
            pid = node.proc.pid
            backlog = 0
            try:
                if "single" in only:
                    with Cpu(pid) as cpu:
                        r = run_h2load(node, 1, 0, 16, 8, tmp, duration_s=secs)
                    backlog += int(r["succeeded"])
                    print(f"h2load single   : {r['req_s']:8.0f} sends/s  (mean "
                          f"{r['mean_latency']}, {r['succeeded']:.0f} ok, -c16 -m8)  "
                          f"[{cpu.per(r['succeeded'])}]", flush=True)
                if "batch" in only:
                    with Cpu(pid) as cpu:
                        r = run_h2load(node, 16, 0, 8, 4, tmp, duration_s=secs)
                    backlog += int(r["succeeded"]) * 16
                    print(f"h2load batch 16 : {r['msgs_s']:8.0f} msgs/s ({r['req_s']:.0f} req/s, "
                          f"-c8 -m4)  [{cpu.per(r['succeeded'] * 16)}]", flush=True)
                if "sdk" in only:
                    total = 1000 if q else 5000
                    with Cpu(pid) as cpu:
                        r = sdk_producer(node, total, 8)
                    backlog += total
                    print(f"SDK producer    : {r['msgs_s']:8.0f} msgs/s  p50 {r['p50_ms']:.2f} ms  "
                          f"p99 {r['p99_ms']:.2f} ms (8 threads, blocking send)  "
                          f"[{cpu.per(total)}]", flush=True)
                if "receive" in only:
                    # ReceiveMessage alone from a native client (no Python consumer in the way):
                    # h2load streams of up to 32, never acked (60 s invisible), in a group of
                    # its own; messages counted by the node's delivered-messages metric.
                    fill = max(0, 20000 - backlog)
                    if fill:
                        run_h2load(node, 16, fill // 16 + 1, 4, 8, tmp)
                        backlog += fill // 16 * 16 + 16
                    recv = grpc_frame(_receive_request(32, 1, group="gr").SerializeToString())
                    before = node.delivered()
                    with Cpu(pid) as cpu:
                        r = run_h2load(node, 32, backlog // 32, 8, 4, tmp, path=RECEIVE_PATH,
                                       body=recv)
                    got = node.delivered() - before
                    print(f"h2load receive  : {got / cpu.wall:8.0f} msgs/s ({got} msgs, "
                          f"{r['req_s']:.0f} streams/s of up to 32, no ack, -c8 -m4)  "
                          f"[{cpu.per(got)}]", flush=True)
                if "consume" in only:
                    if backlog < 20000:
                        run_h2load(node, 16, (20000 - backlog) // 16 + 1, 4, 8, tmp)
                        backlog = 20000
                    native_consume(node, pid, tmp, 20 if q else 60)
                    with Cpu(pid) as cpu:
                        c = consume_in_processes(node, 2, 2, 20 if q else 60)
                    print(f"consume + ack   : {c['msgs_s']:8.0f} msgs/s ({c['consumed']:.0f} msgs, "
                          f"Python: 2 processes x 2 loops x batch 32, one AckMessage per batch)  "
                          f"[{cpu.per(c['consumed'])}]", flush=True)
                if "h2paced" in only:
                    # h2load's bursts of ~32 requests (see h2load_paced).
                    for rate in args.rates:
                        h2load_paced(node, rate, secs, tmp, "h2load", pid)
                if "paced" in only:
                    for rate in args.rates:
                        native_paced(node, pid, rate, 5 if q else 15, tmp, consume=False)
                        native_paced(node, pid, rate, 3 if q else 10, tmp, consume=True)
                        with Cpu(pid) as cpu:
                            lat = asyncio.run(paced_latency(node, rate, 3 if q else 10))
                        print(f"paced {rate:5d}/s   : Python: achieved {lat['achieved_rate']:.0f}/s, send "
                              f"p50 {lat['send_p50_ms']:.2f} ms p99 {lat['send_p99_ms']:.2f} ms; "
                              f"send->receive p50 {lat['e2e_p50_ms']:.1f} ms p99 "
                              f"{lat['e2e_p99_ms']:.1f} ms ({lat['received']:.0f} received, "
                              f"{lat['failed']:.0f} send errors)  "
                              f"[{cpu.per(lat['received'])}]", flush=True)
                if "waiters" in only:
                    # Many receives long-polling one group (20 connections x 10 loops): each
                    # arrival wakes one of them (delivery/notify.py), not all 200.
                    native_paced(node, pid, min(args.rates), 3 if q else 10, tmp, consume=True,
                                 label="waiters", receive_loops=(20, 10), topics="wait")
            finally:
                node.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"end: {load()}", flush=True)


if __name__ == "__main__":
    main()
