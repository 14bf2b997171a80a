"""The same workload against our broker node and the systems a user would pick instead.

    .venv/bin/python bench/peers.py [--seconds 4] [--rate 2000] [--only rabbitmq nats redis ours]
        [--durability sync async] [--clients sdk raw] [--ceiling] [--profile DIR [--gil]]
        [--port rabbitmq=5672 nats=4222 redis=6379] [--budget 230]

``--ceiling`` adds an empty grpc.aio ReceiveMessage+Ack server driven like our node (what grpcio
alone allows here); ``--profile DIR`` records our node with py-spy during each phase and prints
the top frames (``--gil``: only the thread holding the GIL). Needs h2load for the raw client.

One run, bounded (about 3 minutes with the defaults, never more than ``--budget`` seconds of
cases), 1 KiB bodies, everything on 127.0.0.1:

* **RabbitMQ** (aio-pika): quorum queue, persistent messages, publisher confirms (a confirm is sent
  after the quorum - here the single node - has fsynced the entry);
* **NATS JetStream** (nats-py): file-storage stream, acked publish (``js.publish`` awaits the
  PubAck; the server's default ``sync_interval`` is 2 min, i.e. the ack does NOT wait for fsync);
* **Redis Streams** (redis-py asyncio): XADD / XREADGROUP / XACK; this Redis has
  ``appendonly no``: an acknowledged XADD is in memory only;
* **our node** (``python -m brokers.node``, temp data dir) in ``sync`` (fsync before the send is
  answered) and ``async`` durability, driven by the official SDK ``rocketmq-python-client``
  (``send_async`` futures from producer threads; SimpleConsumer ``receive`` + ack futures) and by
  the raw batched load generator of ``bench/grpc_bench.py`` (h2load with a pre-encoded signed
  SendMessage of 16 messages; grpc.aio receive 32 + one AckMessage per batch).

Per case: produce msgs/s with 1 and with 4 producers (each keeps 32 messages in flight: 32
concurrent publishes; h2load: 2 streams x batches of 16), consume-with-ack msgs/s over the
backlog those phases left (one consumer), and a paced phase at ``--rate`` (2,000) msgs/s with a
consumer running: publish p50/p99 and send->receive p99 (the body carries the send time).
Each line ends with ours/peer ratios (throughput ours/peer, latency peer/ours: > 1 means we are
ahead) against our node in the matching durability class (RabbitMQ -> sync; NATS, Redis ->
async). A peer that is not running is skipped with one line. Queues, streams and JetStream
streams created here are deleted; node processes are stopped and their data dirs removed.
Figures are indicative (shared machine), never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import math
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import grpc_bench as gb  # noqa: E402  (also puts the repo root on sys.path)
from _common import CpuMeter, listener_pid, pct, summarise_collapsed  # noqa: E402

BODY = gb.BODY  # 1 KiB
WINDOW = 32  # messages in flight per producer
PACED_GRACE = 5.0  # s after the last paced publish: later acks count as not acked
HOST = "127.0.0.1"
RUN_ID = uuid.uuid4().hex[:8]


# --------------------------------------------------------------------------- results


def stamped_body() -> bytes:
    return struct.pack(">d", time.time()) + BODY[8:]


def sent_at(body: bytes) -> float:
    return struct.unpack(">d", body[:8])[0]


@dataclass
class Row:
    system: str
    client: str
    durability: str
    produce1: float = math.nan
    produce4: float = math.nan
    consume: float = math.nan
    pub_p50: float = math.nan  # ms, paced phase
    pub_p99: float = math.nan
    e2e_p99: float = math.nan
    achieved: float = math.nan  # paced phase: acked publishes / s until the last resolved
    # server CPU: messages per server CPU-second and server CPU share (of one core)
    produce_eff: float = math.nan
    produce_share: float = math.nan
    consume_eff: float = math.nan
    consume_share: float = math.nan
    produce_client: float = math.nan  # client CPU share (this process + h2load) of one core
    consume_client: float = math.nan
    notes: list[str] = field(default_factory=list)
    cls: str = "async"  # which of our durability modes it is compared with

    def cells(self) -> list[str]:
        def f(x: float, digits: int = 0) -> str:
            return "-" if math.isnan(x) else f"{x:,.{digits}f}"
        return [self.system, self.client, self.durability, f(self.produce1), f(self.produce4),
                f(self.consume), f"{f(self.pub_p50, 1)} / {f(self.pub_p99, 1)}",
                f(self.e2e_p99, 1), f(self.achieved)]


    def cpu_cells(self) -> list[str]:
        def f(x: float, fmt: str) -> str:
            return "-" if math.isnan(x) else format(x, fmt)
        return [self.system, self.client, self.durability.split(",")[0].split(":")[0],
                f(self.produce_eff, ",.0f"),
                f"{f(self.produce_share, '.0%')} / {f(self.produce_client, '.0%')}",
                f(self.consume_eff, ",.0f"),
                f"{f(self.consume_share, '.0%')} / {f(self.consume_client, '.0%')}"]


CPU_HEADER = ["system", "client", "durability", "produce msgs / server CPU-s",
              "produce CPU server / client (of 1 core)", "consume msgs / server CPU-s",
              "consume CPU server / client"]

HEADER = ["system", "client", "durability", "produce 1p msg/s", "produce 4p msg/s",
          "consume+ack msg/s", "publish p50 / p99 ms @rate", "send->recv p99 ms @rate",
          "acked /s @rate"]


def ratio(ours: float, peer: float, higher_better: bool = True) -> str:
    if math.isnan(ours) or math.isnan(peer) or ours <= 0 or peer <= 0:
        return "-"
    return f"{(ours / peer if higher_better else peer / ours):.2f}x"


OUR_DURABILITY = {"sync": "sync: fsync (group commit) before the send is answered",
                  "async": "async: answered after the write; fdatasync every 0.2 s"}
PEERS = ("rabbitmq", "nats", "redis")


def ratios_line(peer: Row, ours: list[Row]) -> str:
    parts = []
    for o in ours:
        if o.durability.split(":")[0] != peer.cls:
            continue
        parts.append(
            f"ours {o.durability.split(':')[0]}/{o.client.split(' ')[0]}: "
            f"produce1 {ratio(o.produce1, peer.produce1)}, "
            f"produce4 {ratio(o.produce4, peer.produce4)}, consume {ratio(o.consume, peer.consume)}"
            f", pub p99 {ratio(o.pub_p99, peer.pub_p99, False)}, "
            f"e2e p99 {ratio(o.e2e_p99, peer.e2e_p99, False)}")
    return "; ".join(parts) or "(no run of ours to compare)"


def print_table(rows: list[Row]) -> None:
    ours = [r for r in rows if r.system == "ours"]
    print("\n| " + " | ".join(HEADER) + " |")
    print("|" + "---|" * len(HEADER))
    for r in rows:
        print("| " + " | ".join(r.cells()) + " |")
    print("\nserver CPU (all server threads; the clients run on the same 2 cores):")
    print("\n| " + " | ".join(CPU_HEADER) + " |")
    print("|" + "---|" * len(CPU_HEADER))
    for r in rows:
        print("| " + " | ".join(r.cpu_cells()) + " |")
    print("\nours/peer (throughput ours/peer, latency peer/ours; > 1 = ours ahead):")
    for r in rows:
        if r.system in PEERS:
            print(f"  {r.system:9s} vs {ratios_line(r, ours)}")
    for r in rows:
        for n in r.notes:
            print(f"  note {r.system}/{r.client.split(' ')[0]}/"
                  f"{r.durability.split(',')[0].split(':')[0]}: {n}")


# --------------------------------------------------------------------------- async peers


class Unavailable(Exception):
    """The service is not running here (connection refused / no server)."""


class Peer:
    """One system through its usual asyncio client; streams are named per run and deleted."""

    system = ""
    client = ""
    port = 0
    durability = ""
    cls = "async"

    async def connect(self) -> None: ...
    async def create(self, stream: str) -> None: ...
    async def delete(self, stream: str) -> None: ...
    async def close(self) -> None: ...

    async def producer(self, stream: str) -> tuple[Callable[[bytes], Awaitable[Any]],
                                                   Callable[[], Awaitable[None]]]:
        """(publish(body) -> awaitable that resolves on the durable ack, close())."""
        raise NotImplementedError

    async def consume(self, stream: str, on_body: Callable[[bytes], None],
                      stop: asyncio.Event) -> None:
        """Receive and ack until ``stop`` is set, calling ``on_body`` per acked message."""
        raise NotImplementedError


class RabbitPeer(Peer):
    system, client, port = "rabbitmq", "aio-pika", 5672
    durability, cls = "quorum queue, persistent, publisher confirms (fsync)", "sync"

    async def connect(self) -> None:
        import aio_pika

        try:
            self.conn = await aio_pika.connect(f"amqp://guest:guest@{HOST}:{self.port}/",
                                               timeout=3)
        except (OSError, ConnectionError, asyncio.TimeoutError) as exc:
            raise Unavailable(f"{HOST}:{self.port}: {exc}") from exc
        self.admin = await self.conn.channel()

    def _q(self, stream: str) -> str:
        return f"peers-bench-{RUN_ID}-{stream}"

    async def create(self, stream: str) -> None:
        await self.admin.declare_queue(self._q(stream), durable=True,
                                       arguments={"x-queue-type": "quorum"})

    async def delete(self, stream: str) -> None:
        await self.admin.queue_delete(self._q(stream))

    async def close(self) -> None:
        await self.conn.close()

    async def producer(self, stream: str) -> tuple[Any, Any]:
        import aio_pika

        conn = await aio_pika.connect(f"amqp://guest:guest@{HOST}:{self.port}/", timeout=3)
        ch = await conn.channel(publisher_confirms=True)
        ex, key = ch.default_exchange, self._q(stream)
        persistent = aio_pika.DeliveryMode.PERSISTENT

        def publish(body: bytes) -> Awaitable[Any]:
            return ex.publish(aio_pika.Message(body, delivery_mode=persistent), routing_key=key)
        return publish, conn.close

    async def consume(self, stream: str, on_body: Callable[[bytes], None],
                      stop: asyncio.Event) -> None:
        ch = await self.conn.channel()
        await ch.set_qos(prefetch_count=256)
        queue = await ch.get_queue(self._q(stream), ensure=False)

        async def on_message(message: Any) -> None:
            await message.ack()
            on_body(message.body)

        tag = await queue.consume(on_message)
        await stop.wait()
        await queue.cancel(tag)
        await ch.close()


class NatsPeer(Peer):
    system, client, port = "nats", "nats-py", 4222
    durability = "JetStream file storage, acked publish (server fsyncs every 2 min by default)"

    async def connect(self) -> None:
        import nats

        try:
            self.nc = await asyncio.wait_for(nats.connect(
                f"nats://{HOST}:{self.port}", connect_timeout=2, allow_reconnect=False,
                max_reconnect_attempts=0), 5)
        except Exception as exc:  # noqa: BLE001 - NoServersError, OSError, timeouts
            raise Unavailable(f"{HOST}:{self.port}: {exc!r}") from exc
        self.js = self.nc.jetstream(timeout=10)

    def _s(self, stream: str) -> str:
        return f"PEERS_{RUN_ID}_{stream}".upper()

    async def create(self, stream: str) -> None:
        from nats.js.api import StorageType

        await self.js.add_stream(name=self._s(stream), subjects=[self._s(stream).lower()],
                                 storage=StorageType.FILE)

    async def delete(self, stream: str) -> None:
        await self.js.delete_stream(self._s(stream))

    async def close(self) -> None:
        await self.nc.close()

    async def producer(self, stream: str) -> tuple[Any, Any]:
        import nats

        nc = await nats.connect(f"nats://{HOST}:{self.port}", connect_timeout=2)
        js, subject = nc.jetstream(timeout=10), self._s(stream).lower()

        def publish(body: bytes) -> Awaitable[Any]:
            return js.publish(subject, body)
        return publish, nc.close

    async def consume(self, stream: str, on_body: Callable[[bytes], None],
                      stop: asyncio.Event) -> None:
        import nats.errors

        sub = await self.js.pull_subscribe(self._s(stream).lower(), durable="bench",
                                           stream=self._s(stream))
        while not stop.is_set():
            try:
                msgs = await sub.fetch(256, timeout=0.5)
            except (nats.errors.TimeoutError, asyncio.TimeoutError):
                continue
            for m in msgs:
                await m.ack()
                on_body(m.data)
        await sub.unsubscribe()


class RedisPeer(Peer):
    system, client, port = "redis", "redis-py asyncio", 6379
    durability = "Streams, appendonly no: acked XADD is in memory only (no fsync)"

    async def connect(self) -> None:
        import redis.asyncio as redis

        self.r = redis.Redis(host=HOST, port=self.port, socket_connect_timeout=2)
        try:
            await self.r.ping()
        except Exception as exc:  # noqa: BLE001 - ConnectionError
            raise Unavailable(f"{HOST}:{self.port}: {exc}") from exc

    def _k(self, stream: str) -> str:
        return f"peers-bench:{RUN_ID}:{stream}"

    async def create(self, stream: str) -> None:
        await self.r.xgroup_create(self._k(stream), "g", id="0", mkstream=True)

    async def delete(self, stream: str) -> None:
        await self.r.delete(self._k(stream))

    async def close(self) -> None:
        await self.r.aclose()

    async def producer(self, stream: str) -> tuple[Any, Any]:
        import redis.asyncio as redis

        # Blocking pool: the paced phase may have more than WINDOW publishes pending.
        pool = redis.BlockingConnectionPool(host=HOST, port=self.port, max_connections=WINDOW,
                                            timeout=10)
        r, key = redis.Redis(connection_pool=pool), self._k(stream)

        def publish(body: bytes) -> Awaitable[Any]:
            return r.xadd(key, {"b": body})
        return publish, r.aclose

    async def consume(self, stream: str, on_body: Callable[[bytes], None],
                      stop: asyncio.Event) -> None:
        key = self._k(stream)
        while not stop.is_set():
            got = await self.r.xreadgroup("g", "c1", {key: ">"}, count=256, block=500)
            for _, entries in got or ():
                if entries:
                    await self.r.xack(key, "g", *(i for i, _ in entries))
                    for _, fields in entries:
                        on_body(fields[b"b"])


async def produce_phase(peer: Peer, stream: str, producers: int,
                        seconds: float) -> tuple[float, int]:
    pubs = [await peer.producer(stream) for _ in range(producers)]
    count = 0
    end = time.perf_counter() + seconds

    async def slot(publish: Callable[[bytes], Awaitable[Any]]) -> None:
        nonlocal count
        while time.perf_counter() < end:
            await publish(BODY)
            count += 1

    start = time.perf_counter()
    await asyncio.gather(*(slot(p) for p, _ in pubs for _ in range(WINDOW)))
    elapsed = time.perf_counter() - start
    for _, close in pubs:
        await close()
    return count / elapsed, count


async def consume_phase(peer: Peer, stream: str, expected: int,
                        budget: float) -> tuple[float, int]:
    stop = asyncio.Event()
    got = 0
    start = time.perf_counter()
    last = start

    def on_body(_: bytes) -> None:
        nonlocal got, last
        got += 1
        last = time.perf_counter()
        if got >= expected:
            stop.set()

    task = asyncio.create_task(peer.consume(stream, on_body, stop))
    try:
        await asyncio.wait_for(asyncio.shield(stop.wait()), budget)
    except asyncio.TimeoutError:
        pass
    finally:
        stop.set()
        await task
    return got / max(last - start, 1e-9), got


async def paced_phase(peer: Peer, stream: str, rate: int, seconds: float) -> dict[str, float]:
    stop = asyncio.Event()
    e2e: list[float] = []
    pub_lat: list[float] = []
    consumer = asyncio.create_task(
        peer.consume(stream, lambda b: e2e.append(time.time() - sent_at(b)), stop))
    failed = 0

    async def one() -> None:
        nonlocal failed
        t0 = time.perf_counter()
        try:
            await publish(stamped_body())
        except Exception:  # noqa: BLE001 - counted
            failed += 1
            return
        pub_lat.append(time.perf_counter() - t0)

    n = int(rate * seconds)
    try:
        publish, close = await peer.producer(stream)
        tasks = []
        start = time.perf_counter()
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        # Like grpc_bench.paced_latency's 5 s send timeout: publishes not acked PACED_GRACE s
        # after the last was issued are abandoned (counted, left out of the percentiles).
        _, pending = await asyncio.wait(tasks, timeout=PACED_GRACE)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        achieved = len(pub_lat) / (time.perf_counter() - start)
        await close()
        deadline = time.perf_counter() + 2
        while len(e2e) < len(pub_lat) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await consumer
    return {"achieved": achieved, "pub_p50": pct(pub_lat, 0.5), "pub_p99": pct(pub_lat, 0.99),
            "e2e_p99": pct(e2e, 0.99), "lost": len(pub_lat) - len(e2e),
            "unacked": n - len(pub_lat)}


def paced_notes(row: Row, p: dict[str, float]) -> None:
    if p["unacked"]:
        row.notes.append(f"paced: {p['unacked']:.0f} publishes not acked within "
                         f"{PACED_GRACE:g} s (left out of the percentiles)")
    if p["lost"] > 0:
        row.notes.append(f"paced: {p['lost']:.0f} acked messages not received within 2 s")


async def run_peer(peer: Peer, args: argparse.Namespace) -> Row:
    row = Row(peer.system, peer.client, peer.durability, cls=peer.cls)
    refused = port_refused(peer.port)
    if refused:
        raise Unavailable(f"{HOST}:{peer.port}: {refused}")
    await peer.connect()
    created: list[str] = []
    try:
        for s in ("bulk", "lat"):
            await peer.create(s)
            created.append(s)
        cpu = CpuMeter(listener_pid(peer.port)).start()
        row.produce1, n1 = await produce_phase(peer, "bulk", 1, args.seconds)
        row.produce4, n4 = await produce_phase(peer, "bulk", 4, args.seconds)
        cpu.stop()
        row.produce_eff, row.produce_share = cpu.per_server_second(n1 + n4), cpu.server_share()
        row.produce_client = cpu.client_s / cpu.wall_s
        cpu.start()
        row.consume, got = await consume_phase(peer, "bulk", n1 + n4, args.seconds + 2)
        cpu.stop()
        row.consume_eff, row.consume_share = cpu.per_server_second(got), cpu.server_share()
        row.consume_client = cpu.client_s / cpu.wall_s
        p = await paced_phase(peer, "lat", args.rate, args.paced_seconds)
        row.achieved, row.pub_p50, row.pub_p99, row.e2e_p99 = (
            p["achieved"], p["pub_p50"], p["pub_p99"], p["e2e_p99"])
        paced_notes(row, p)
    finally:
        for s in created:
            try:
                await peer.delete(s)
            except Exception as exc:  # noqa: BLE001 - report, keep cleaning
                print(f"  cleanup of {peer.system} {s} failed: {exc!r}", flush=True)
        await peer.close()
    return row


# --------------------------------------------------------------------------- our node


class Profiler:
    """py-spy record (raw collapsed stacks) of a pid while a case runs; optional."""

    def __init__(self, out_dir: Path | None, pid: int, name: str, gil: bool = False) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.out: Path | None = None
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if out_dir is None or not os.path.exists(exe):
            return
        self.out = out_dir / f"{name}.txt"
        self.proc = subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--format", "raw", "-o", str(self.out),
             "--rate", "200", "--nonblocking", *(["--gil"] if gil else [])],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Phase:
    """CPU accounting (and, with --profile, a py-spy recording) of one phase of one case."""

    def __init__(self, args: argparse.Namespace, pid: int, name: str) -> None:
        self.args, self.pid, self.name = args, pid, name
        self.cpu = CpuMeter(pid)

    def __enter__(self) -> CpuMeter:
        self.prof = Profiler(self.args.profile, self.pid, self.name, self.args.gil)
        if self.prof.proc:
            time.sleep(0.3)  # let py-spy attach before the phase starts
        return self.cpu.start()

    def __exit__(self, *exc: object) -> None:
        self.cpu.stop()
        self.prof.stop()


def start_node(tmp: Path, durability: str, rate: int) -> gb.NodeProcess:
    root = Path(tempfile.mkdtemp(dir=tmp, prefix=f"node-{durability}-"))
    return gb.NodeProcess(root, durability, (rate,))


def stop_node(node: gb.NodeProcess) -> None:
    try:
        node.stop()
    finally:
        if node.proc.poll() is None:
            node.proc.kill()
            node.proc.wait()


def run_ours_raw(tmp: Path, durability: str, args: argparse.Namespace) -> Row:
    row = Row("ours", "raw gRPC (h2load, batches of 16)", OUR_DURABILITY[durability])
    node = start_node(tmp, durability, args.rate)
    name = f"node-{durability}-raw"
    try:
        produced = 0
        with Phase(args, node.proc.pid, f"{name}-produce") as cpu:
            for producers in (1, 4):
                r = gb.run_h2load(node, 16, 0, producers, WINDOW // 16, tmp,
                                  duration_s=args.seconds)
                produced += int(r["succeeded"]) * 16
                if producers == 1:
                    row.produce1 = r["msgs_s"]
                else:
                    row.produce4 = r["msgs_s"]
        row.produce_eff, row.produce_share = cpu.per_server_second(produced), cpu.server_share()
        row.produce_client = cpu.client_s / cpu.wall_s
        with Phase(args, node.proc.pid, f"{name}-consume") as cpu:
            c = asyncio.run(gb.consume_with_ack(node.endpoint, produced, 2, args.seconds + 2))
        row.consume = c["msgs_s"]
        row.consume_eff = cpu.per_server_second(int(c["consumed"]))
        row.consume_share = cpu.server_share()
        row.consume_client = cpu.client_s / cpu.wall_s
        with Phase(args, node.proc.pid, f"{name}-paced"):
            lat = asyncio.run(gb.paced_latency(node, args.rate, args.paced_seconds))
        row.achieved, row.pub_p50, row.pub_p99, row.e2e_p99 = (
            lat["achieved_rate"], lat["send_p50_ms"], lat["send_p99_ms"], lat["e2e_p99_ms"])
        row.notes.append("paced phase: grpc_bench.paced_latency (single-message grpc.aio sends, "
                         "2 receive loops)")
        if lat["failed"]:
            row.notes.append(f"paced: {lat['failed']:.0f} send errors (5 s timeout)")
    finally:
        stop_node(node)
    return row


def _sdk_config(node: gb.NodeProcess) -> Any:
    from rocketmq import ClientConfiguration, Credentials

    return ClientConfiguration(node.endpoint, Credentials(gb.AK, gb.SK), namespace=gb.NS,
                               request_timeout=10)


def _sdk_message(topic: str, body: bytes) -> Any:
    from rocketmq import Message

    m = Message()
    m.topic, m.body = topic, body
    return m


def sdk_produce(node: gb.NodeProcess, producers: int, seconds: float) -> tuple[float, int]:
    """Each producer: its own SDK Producer and thread, WINDOW ``send_async`` futures in flight."""
    from rocketmq import Producer

    clients = [Producer(_sdk_config(node), ("bench",)) for _ in range(producers)]
    for p in clients:
        p.startup()
    ok = [0]
    lock = threading.Lock()
    go = threading.Barrier(producers + 1)
    end = [0.0]

    def worker(p: Any) -> None:
        window = threading.BoundedSemaphore(WINDOW)

        def done(f: concurrent.futures.Future[Any]) -> None:
            if f.exception() is None:
                with lock:
                    ok[0] += 1
            window.release()

        go.wait()
        while time.perf_counter() < end[0]:
            window.acquire()
            p.send_async(_sdk_message("bench", BODY)).add_done_callback(done)
        for _ in range(WINDOW):  # drain
            window.acquire(timeout=15)

    threads = [threading.Thread(target=worker, args=(p,), daemon=True) for p in clients]
    for t in threads:
        t.start()
    start = time.perf_counter()
    end[0] = start + seconds
    go.wait()
    for t in threads:
        t.join(30)
    elapsed = time.perf_counter() - start
    for p in clients:
        p.shutdown()
    return ok[0] / elapsed, ok[0]


def _sdk_consumer(node: gb.NodeProcess, group: str, topic: str) -> Any:
    from rocketmq import FilterExpression, SimpleConsumer

    c = SimpleConsumer(_sdk_config(node), group, {topic: FilterExpression()}, await_duration=1)
    c.startup()
    return c


def _sdk_receive_and_ack(consumer: Any, on_body: Callable[[bytes], None]) -> int:
    try:
        msgs = consumer.receive(32, 60)
    except Exception:  # noqa: BLE001 - empty long poll raises in this SDK version
        return 0
    # One AckMessage RPC per message is the SDK's only way. Its ack_async is unusable from
    # threads in 5.1.2 (returns None; the underlying _ack_async builds an asyncio.Future and
    # needs an event loop in the calling thread), so a batch's acks run on a small pool.
    def ack(m: Any) -> bool:
        try:
            consumer.ack(m)
            return True
        except Exception:  # noqa: BLE001 - a failed ack is a redelivery, not a consumed message
            return False

    acked = [m for m, ok in zip(msgs, ACK_POOL.map(ack, msgs)) if ok]
    for m in acked:
        on_body(m.body)
    return len(acked)


ACK_POOL = concurrent.futures.ThreadPoolExecutor(8, thread_name_prefix="sdk-ack")


def sdk_consume(node: gb.NodeProcess, expected: int, budget: float) -> tuple[float, int]:
    consumer = _sdk_consumer(node, "gb", "bench")
    got, last = [0], [0.0]
    lock = threading.Lock()
    start = time.perf_counter()

    def loop() -> None:
        while got[0] < expected and time.perf_counter() - start < budget:
            n = _sdk_receive_and_ack(consumer, lambda b: None)
            with lock:
                got[0] += n
                if n:
                    last[0] = time.perf_counter()

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(budget + 20)
    consumer.shutdown()
    return got[0] / max(last[0] - start, 1e-9), got[0]


def sdk_paced(node: gb.NodeProcess, rate: int, seconds: float) -> dict[str, float]:
    from rocketmq import Producer

    topic, group = f"lat{rate}", f"glat{rate}"
    producer = Producer(_sdk_config(node), (topic,))
    producer.startup()
    consumer = _sdk_consumer(node, group, topic)
    e2e: list[float] = []
    pub_lat: list[float] = []
    stop = threading.Event()
    lock = threading.Lock()

    def consume() -> None:
        while not stop.is_set():
            _sdk_receive_and_ack(consumer, lambda b: e2e.append(time.time() - sent_at(b)))

    readers = [threading.Thread(target=consume, daemon=True) for _ in range(2)]
    for t in readers:
        t.start()
    n = int(rate * seconds)
    futures = []
    start = time.perf_counter()
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t0 = time.perf_counter()
        f = producer.send_async(_sdk_message(topic, stamped_body()))

        def done(f: Any, t0: float = t0) -> None:
            if f.exception() is None:
                with lock:
                    pub_lat.append(time.perf_counter() - t0)
        f.add_done_callback(done)
        futures.append(f)
    concurrent.futures.wait(futures, timeout=PACED_GRACE)
    with lock:
        acked = list(pub_lat)
    achieved = len(acked) / (time.perf_counter() - start)
    deadline = time.perf_counter() + 2
    while len(e2e) < len(acked) and time.perf_counter() < deadline:
        time.sleep(0.05)
    stop.set()
    for t in readers:
        t.join(15)
    consumer.shutdown()
    producer.shutdown()
    return {"achieved": achieved, "pub_p50": pct(acked, 0.5), "pub_p99": pct(acked, 0.99),
            "e2e_p99": pct(e2e, 0.99), "lost": len(acked) - len(e2e), "unacked": n - len(acked)}


def run_ours_sdk(tmp: Path, durability: str, args: argparse.Namespace) -> Row:
    row = Row("ours", "rocketmq-python-client (SDK)", OUR_DURABILITY[durability])
    node = start_node(tmp, durability, args.rate)
    name = f"node-{durability}-sdk"
    try:
        with Phase(args, node.proc.pid, f"{name}-produce") as cpu:
            row.produce1, n1 = sdk_produce(node, 1, args.seconds)
            row.produce4, n4 = sdk_produce(node, 4, args.seconds)
        row.produce_eff, row.produce_share = cpu.per_server_second(n1 + n4), cpu.server_share()
        row.produce_client = cpu.client_s / cpu.wall_s
        with Phase(args, node.proc.pid, f"{name}-consume") as cpu:
            row.consume, got = sdk_consume(node, n1 + n4, args.seconds + 2)
        row.consume_eff, row.consume_share = cpu.per_server_second(got), cpu.server_share()
        row.consume_client = cpu.client_s / cpu.wall_s
        with Phase(args, node.proc.pid, f"{name}-paced"):
            p = sdk_paced(node, args.rate, args.paced_seconds)
        row.achieved, row.pub_p50, row.pub_p99, row.e2e_p99 = (
            p["achieved"], p["pub_p50"], p["pub_p99"], p["e2e_p99"])
        paced_notes(row, p)
    finally:
        stop_node(node)
    return row


# --------------------------------------------------------------------------- ceiling

_EMPTY_CONSUME_SERVER = """
import asyncio, sys, grpc
from rocketmq.grpc_protocol import service_pb2_grpc, service_pb2 as spb, definition_pb2 as pb
OK = pb.Status(code=pb.Code.OK, message="OK")
MSG = pb.Message(topic=pb.Resource(resource_namespace="bench", name="bench"), body=b"x" * 1024,
    system_properties=pb.SystemProperties(message_id="0" * 24, receipt_handle="r" * 80,
        tag="t", message_type=pb.NORMAL, body_digest=pb.Digest(type=pb.MD5, checksum="A" * 32)))
class S(service_pb2_grpc.MessagingServiceServicer):
    async def ReceiveMessage(self, request, context):
        yield spb.ReceiveMessageResponse(status=OK)
        for _ in range(request.batch_size):
            yield spb.ReceiveMessageResponse(message=MSG)
        yield spb.ReceiveMessageResponse(delivery_timestamp={"seconds": 1})
    async def AckMessage(self, request, context):
        return spb.AckMessageResponse(status=OK, entries=[
            spb.AckMessageResultEntry(message_id=e.message_id, receipt_handle=e.receipt_handle,
                                      status=OK) for e in request.entries])
async def main():
    s = grpc.aio.server()
    service_pb2_grpc.add_MessagingServiceServicer_to_server(S(), s)
    s.add_insecure_port("127.0.0.1:" + sys.argv[1])
    await s.start()
    print("ready", flush=True)
    await s.wait_for_termination()
asyncio.run(main())
"""


def consume_ceiling(args: argparse.Namespace) -> Row:
    """Empty grpc.aio ReceiveMessage (one frame per message, as the protocol requires) + Ack
    handlers, driven by the same raw consume loop as our node: what grpcio alone allows here."""
    row = Row("grpc.aio empty handler", "raw consume loop (ceiling)", "none")
    port = gb.free_port()
    proc = subprocess.Popen([sys.executable, "-c", _EMPTY_CONSUME_SERVER, str(port)],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        server = type("Endpoint", (), {"endpoint": f"{HOST}:{port}"})()
        asyncio.run(gb.consume_with_ack(server.endpoint, 10**9, 2, 1))  # warm-up
        with Phase(args, proc.pid, "ceiling-consume") as cpu:
            c = asyncio.run(gb.consume_with_ack(server.endpoint, 10**9, 2, args.seconds))
        row.consume = c["msgs_s"]
        row.consume_eff = cpu.per_server_second(int(c["consumed"]))
        row.consume_share = cpu.server_share()
        row.consume_client = cpu.client_s / cpu.wall_s
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return row


# --------------------------------------------------------------------------- main


def port_refused(port: int) -> str | None:
    """Why a TCP connection to the port fails (e.g. "Connection refused"), None if it opens."""
    with socket.socket() as s:
        s.settimeout(2)
        err = s.connect_ex((HOST, port))
    return os.strerror(err) if err else None


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=4, help="length of each produce phase")
    ap.add_argument("--paced-seconds", type=float, default=3)
    ap.add_argument("--rate", type=int, default=2000, help="paced rate, msgs/s")
    ap.add_argument("--only", nargs="+", choices=("rabbitmq", "nats", "redis", "ours"),
                    default=["rabbitmq", "nats", "redis", "ours"])
    ap.add_argument("--durability", nargs="+", choices=("sync", "async"),
                    default=["sync", "async"], help="our node's modes")
    ap.add_argument("--clients", nargs="+", choices=("sdk", "raw"), default=["sdk", "raw"],
                    help="clients for our node")
    ap.add_argument("--profile", type=Path, default=None,
                    help="py-spy record our node during each phase into DIR (raw stacks) and "
                         "print the top frames")
    ap.add_argument("--profile-top", type=int, default=12)
    ap.add_argument("--gil", action="store_true",
                    help="with --profile: sample only the thread holding the GIL (py-spy --gil)")
    ap.add_argument("--ceiling", action="store_true",
                    help="also measure an empty grpc.aio ReceiveMessage+Ack server (consume "
                         "ceiling of grpcio on this machine)")
    ap.add_argument("--port", nargs="+", default=[], metavar="SYSTEM=PORT",
                    help="peer ports on 127.0.0.1 (defaults rabbitmq=5672 nats=4222 redis=6379)")
    ap.add_argument("--budget", type=float, default=230,
                    help="skip remaining cases once this many seconds have passed")
    ap.add_argument("--node-args", default="",
                    help="extra arguments for our node, space-separated (e.g. --grpc-workers 0)")
    args = ap.parse_args()
    gb.NodeProcess.extra_args = tuple(args.node_args.split())
    # SIGTERM (e.g. `timeout`) unwinds like Ctrl-C, so the finally blocks stop node processes and
    # delete the queues/streams created so far.
    signal.signal(signal.SIGTERM, _interrupt)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    print(f"peers bench: 1 KiB bodies, {WINDOW} in flight per producer, produce phases "
          f"{args.seconds:g} s, paced {args.rate}/s for {args.paced_seconds:g} s; "
          f"nproc {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    rows: list[Row] = []
    peers: list[Peer] = [cls() for cls in (RabbitPeer, NatsPeer, RedisPeer)
                         if cls.system in args.only]
    ports = dict(item.split("=", 1) for item in args.port)
    for peer in peers:
        peer.port = int(ports.get(peer.system, peer.port))
    tmp = Path(tempfile.mkdtemp(prefix="peers-bench-"))
    try:
        cases: list[tuple[str, Callable[[], Row]]] = []
        for peer in peers:
            cases.append((f"{peer.system} ({peer.client})",
                          lambda peer=peer: asyncio.run(run_peer(peer, args))))
        if "ours" in args.only:
            if "raw" in args.clients and not shutil.which("h2load"):
                print("skip ours/raw: h2load not found (apt-get install -y nghttp2-client)")
                args.clients = [c for c in args.clients if c != "raw"]
            for mode in args.durability:
                for client in args.clients:
                    run = run_ours_sdk if client == "sdk" else run_ours_raw
                    cases.append((f"ours {mode} ({client})",
                                  lambda run=run, mode=mode: run(tmp, mode, args)))
        if args.ceiling:
            cases.append(("grpc.aio consume ceiling", lambda: consume_ceiling(args)))
        for name, case in cases:
            used = time.perf_counter() - t_start
            if used > args.budget:
                print(f"skip {name}: time budget of {args.budget:g} s used up", flush=True)
                continue
            t0 = time.perf_counter()
            try:
                row = case()
            except Unavailable as exc:
                print(f"skip {name}: not running ({exc})", flush=True)
                continue
            except Exception as exc:  # noqa: BLE001 - one broken case must not hide the others
                print(f"FAILED {name}: {exc!r}", flush=True)
                continue
            rows.append(row)
            print(f"{name:28s} {time.perf_counter() - t0:5.1f} s  " +
                  "  ".join(f"{h.split(' @')[0]}={c}" for h, c in zip(HEADER[3:], row.cells()[3:])),
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows)
    if args.profile:
        print(f"\npy-spy of our node, per phase (raw stacks in {args.profile}):")
        for f in sorted(args.profile.glob("node-*.txt")):
            print(summarise_collapsed(f, args.profile_top))
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s, load average now "
          f"{os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
