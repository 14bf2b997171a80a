"""Subprocess for the kill test: heavy sync-mode appends, printing every acknowledged append.

Usage: python crash_writer.py <data dir> <seed>. Each acknowledged append prints
``<msg_id> <queue_id> <crc32 of body>`` and flushes, so the parent knows exactly what was
acknowledged before it sent SIGKILL. Bodies are self-checking: 4-byte CRC32 of the rest, then
the rest, so the parent can also validate messages that were never acknowledged.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import zlib
from pathlib import Path

from brokers.node.store import AppendStatus, MessageStore, NewMessage, StoreConfig

TOPIC = "crash%orders"


def body(rng: random.Random) -> bytes:
    rest = rng.randbytes(rng.choice((16, 200, 1000, 3000)))
    return zlib.crc32(rest).to_bytes(4, "little") + rest


async def producer(store: MessageStore, rng: random.Random, out: list[str]) -> None:
    while True:
        if rng.random() < 0.2:
            msgs = [NewMessage(TOPIC, rng.randrange(4), body(rng), keys=(f"k{rng.randrange(50)}",))
                    for _ in range(rng.randrange(1, 20))]
            results = await store.append_many(msgs)
        else:
            msgs = [NewMessage(TOPIC, rng.randrange(4), body(rng), tag=rng.choice(("A", "B")))]
            results = [await store.append(msgs[0])]
        for m, r in zip(msgs, results):
            if r.status is AppendStatus.OK:
                sys.stdout.write(f"{r.msg_id} {m.queue_id} {zlib.crc32(m.body)}\n")
        sys.stdout.flush()


async def main() -> None:
    root, seed = Path(sys.argv[1]), int(sys.argv[2])
    store = await MessageStore.open(StoreConfig(
        root=root, segment_bytes=64 * 1024, cq_segment_entries=64, durability="sync",
        checkpoint_interval_s=0.05))
    sys.stdout.write(f"READY {os.getpid()}\n")
    sys.stdout.flush()
    rng = random.Random(seed)
    await asyncio.gather(*(producer(store, random.Random(rng.random()), []) for _ in range(32)))


if __name__ == "__main__":
    asyncio.run(main())
