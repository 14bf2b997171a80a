"""Consume-with-ack throughput of the delivery engine alone (no gRPC), over a real store.

    .venv/bin/python bench/delivery_bench.py [--messages 100000] [--queues 4] [--body 1024]
                                             [--codec] [--profile]

Appends ``--messages`` messages (``append_many``, chunks of 256) spread over ``--queues`` queues,
then one consumer loop does ``receive(max_messages=32)`` + ``ack_many`` of the 32 handles
(``--single-ack``: one ``ack`` call per message) until all are acked, and prints msgs/s for the append and for the consume-with-ack phases (plus the state
flush at the end). Wall-clock and per-CPU-second rates are both printed: on a shared machine
the CPU figure (process time, all threads) is the steadier one. ``--profile`` prints the top cProfile entries of the consume phase.
``--codec`` makes it the gRPC consume path minus grpc: messages are appended with the
properties the send handler adds (``codec.to_new_message``: the body MD5 when the codec stores
one) and every delivery is turned into its protobuf (``codec.to_delivered_message``) and
serialised, as ReceiveMessage does.
Temporary directory, deleted afterwards. Figures only, no assertions (the machine is shared).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rocketmq.grpc_protocol import definition_pb2 as pb  # noqa: E402

from brokers.node.delivery import ConsumerGroup, DeliveryConfig, DeliveryEngine  # noqa: E402
from brokers.node.eventloop import CHOICES as LOOP_CHOICES  # noqa: E402
from brokers.node.eventloop import run as run_on_loop  # noqa: E402
from brokers.node.grpc import codec  # noqa: E402
from brokers.node.store import MessageStore, NewMessage, StoreConfig  # noqa: E402

TOPIC = "bench%orders"
GROUP = ConsumerGroup("bench", "g")


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="delivery-bench-") as tmp:
        root = Path(tmp)
        store = await MessageStore.open(StoreConfig(root=root / "store", durability="async",
                                                    segment_bytes=256 * 1024 * 1024))
        engine = DeliveryEngine(store, state_path=root / "delivery.sqlite3",
                                config=DeliveryConfig())
        await engine.start()
        body = b"x" * args.body
        props: dict[str, str] = {}
        if args.codec:  # what the send handler's to_new_message adds besides user properties
            sent = pb.Message(topic=pb.Resource(resource_namespace="bench", name="orders"),
                              body=body, system_properties=pb.SystemProperties(
                                  message_id="01BENCH", tag="t"))
            props = dict(codec.to_new_message(
                sent, stored_topic_name=TOPIC, queue_id=0, message_type=pb.NORMAL,
                born_host_fallback="127.0.0.1").properties)
        t0 = time.perf_counter()
        for start in range(0, args.messages, 256):
            n = min(256, args.messages - start)
            res = await store.append_many(
                [NewMessage(TOPIC, (start + i) % args.queues, body, tag="t", properties=props)
                 for i in range(n)])
            assert all(r.ok for r in res)
        t_append = time.perf_counter() - t0
        print(f"append_many: {args.messages} msgs in {t_append:.2f}s = "
              f"{args.messages / t_append:,.0f} msgs/s")

        # Reference: the store's read path alone over the same data, 32 per read.
        c0 = time.process_time()
        t0 = time.perf_counter()
        for q in range(args.queues):
            off, hi = store.queue_bounds(TOPIC, q)
            while off < hi:
                off = (await store.read(TOPIC, q, off, max_count=32)).next_offset
        t_read = time.perf_counter() - t0
        c_read = time.process_time() - c0
        print(f"store.read(32) alone: {args.messages / t_read:,.0f} msgs/s wall, "
              f"{args.messages / c_read:,.0f} msgs/s per CPU second = "
              f"{c_read / args.messages * 1e6:.1f} us CPU/msg")

        prof = cProfile.Profile() if args.profile else None
        acked = 0
        c0 = time.process_time()
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        while acked < args.messages:
            got = await engine.receive(group=GROUP, topic=TOPIC, client_id="c", max_messages=32,
                                       invisible_ms=60_000)
            if not got:
                break
            if args.codec:
                for d in got:
                    codec.to_delivered_message(
                        d.message, receipt_handle=d.receipt_handle,
                        delivery_attempt=d.delivery_attempt,
                        invisible_duration_s=59.9).SerializeToString()
            if args.single_ack:
                for d in got:
                    await engine.ack(group=GROUP, topic=TOPIC, receipt_handle=d.receipt_handle)
            else:  # one AckMessage request carrying the batch's handles
                await engine.ack_many(group=GROUP, topic=TOPIC,
                                      receipt_handles=[d.receipt_handle for d in got])
            acked += len(got)
        t_consume = time.perf_counter() - t0
        c_consume = time.process_time() - c0
        t1 = time.perf_counter()
        await engine.flush()
        t_flush = time.perf_counter() - t1
        if prof:
            prof.disable()
        how = "ack x1" if args.single_ack else "ack_many(32)"
        print(f"receive(32)+{how}: {acked} msgs in {t_consume:.2f}s = "
              f"{acked / t_consume:,.0f} msgs/s wall, {acked / c_consume:,.0f} msgs/s per CPU "
              f"second = {c_consume / max(acked, 1) * 1e6:.1f} us CPU/msg "
              f"(final state flush {t_flush * 1000:.0f} ms)")
        lag = sum(q.lag for q in engine.group_lag(GROUP, TOPIC))
        print(f"remaining lag: {lag}")
        await engine.stop()
        await store.close()
        if prof:
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=100_000)
    p.add_argument("--queues", type=int, default=4)
    p.add_argument("--body", type=int, default=1024)
    p.add_argument("--codec", action="store_true",
                   help="also build and serialise each delivered protobuf (gRPC consume path)")
    p.add_argument("--single-ack", action="store_true",
                   help="one engine.ack call per message (as before ack_many existed)")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--event-loop", choices=LOOP_CHOICES, default="auto",
                   help="auto = the node's default (uvloop)")
    args = p.parse_args()
    run_on_loop(run(args), args.event_loop)


if __name__ == "__main__":
    main()
