"""Storage-engine benchmark: append/read throughput against the machine's raw disk figures.

    .venv/bin/python bench/store_bench.py            # full run (a few minutes + backlog)
    .venv/bin/python bench/store_bench.py --quick    # < 60 s
    .venv/bin/python bench/store_bench.py --backlog 2000000 --skip-matrix
    .venv/bin/python bench/store_bench.py --targets 3  # the target cells only, 3 rounds of 3 s
                                                       # (+ raw sequential bandwidth, msgs/fsync)

Prints: raw sequential write bandwidth; raw Python group-commit rates (write + fdatasync of
batches the size of the concurrency); store append rates (async and sync, 128 B / 1 KiB / 16 KiB,
1/16/256/1024 concurrent appenders each awaiting ``append``) with p50/p99 latency, the
store/raw ratio and CPU microseconds per message (writer thread, event-loop thread, whole
process: on a shared machine these move far less than the wall rates); ``append_many`` rates;
read throughput; and the backlog figures (peak RSS, append rate at start vs end, read rate from
the oldest vs the newest offset).
Everything runs in a temporary directory that is deleted afterwards. No assertions: figures only.
On a VM, a run that follows another one reuses the page-cache pages the first freed and pays
less kernel time per write: compare versions in alternating runs, both orders (docs/storage.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brokers.node.eventloop import CHOICES as LOOP_CHOICES
from brokers.node.eventloop import run as run_on_loop
from brokers.node.eventloop import running_loop_name
from brokers.node.heap import freeze_startup_heap
from brokers.node.store import MessageStore, MiB, NewMessage, StoreConfig

SIZES = (128, 1024, 16 * 1024)
CONCURRENCY = (1, 16, 256, 1024)
TOPIC = "bench%t"


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MiB


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- raw baselines ---------------------------------------------------------------------------------
def raw_sequential_mb_s(directory: Path, seconds: float) -> float:
    """MB/s of a bare loop of 1 MiB ``write`` calls sustained for ``seconds`` (+ one fdatasync).

    Sustained, not a burst: the first few hundred MiB land in free page cache at memcpy speed
    (3.2 GB/s here) while a 3 s run that has filled the cache pays for reclaim and writeback
    throttling (1.4-1.9 GB/s). The store cells run for ``seconds`` too, so the ratio compares
    like with like."""
    path = directory / "raw-seq"
    block = os.urandom(MiB)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    written = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        os.write(fd, block)
        written += 1
    os.fdatasync(fd)
    elapsed = time.perf_counter() - t0
    os.close(fd)
    os.unlink(path)
    return written / elapsed


def raw_group_commit(directory: Path, size: int, batch: int, seconds: float) -> float:
    """Messages/s of a bare loop: write(batch * size bytes) + fdatasync."""
    path = directory / "raw-gc"
    data = os.urandom(size * batch)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        os.write(fd, data)
        os.fdatasync(fd)
        n += batch
    elapsed = time.perf_counter() - t0
    os.close(fd)
    os.unlink(path)
    return n / elapsed


class CpuMeter:
    """CPU seconds used since creation by the store's writer thread, the calling (event-loop)
    thread and the whole process. Per-message CPU is far less noisy than wall rates on a loaded
    machine: it does not count the time spent waiting for a core."""

    def __init__(self, store: MessageStore) -> None:
        self._writer_clock = time.pthread_getcpuclockid(store.writer._thread.ident)  # type: ignore[arg-type]
        self._start = self._now()

    def _now(self) -> tuple[float, float, float]:
        return (time.clock_gettime(self._writer_clock), time.thread_time(), time.process_time())

    def read(self) -> tuple[float, float, float]:
        """(writer, loop, process) CPU seconds since creation."""
        now = self._now()
        return (now[0] - self._start[0], now[1] - self._start[1], now[2] - self._start[2])


# -- store runs ------------------------------------------------------------------------------------
async def append_run(root: Path, durability: str, size: int, conc: int, seconds: float) -> dict[str, float]:
    store = await MessageStore.open(StoreConfig(root=root, durability=durability))  # type: ignore[arg-type]
    body = os.urandom(size)
    lat: list[float] = []
    count = 0
    stop_at = time.perf_counter() + seconds

    async def appender(q: int) -> None:
        nonlocal count
        msg = NewMessage(TOPIC, q % 8, body)
        perf = time.perf_counter
        while perf() < stop_at:
            t = perf()
            await store.append(msg)
            lat.append(perf() - t)
            count += 1

    cpu = CpuMeter(store)
    t0 = time.perf_counter()
    await asyncio.gather(*(appender(i) for i in range(conc)))
    elapsed = time.perf_counter() - t0
    used = cpu.read()
    batches = store.writer.batches
    gc = store.writer.group_commit  # sync mode: the fdatasync thread (see groupcommit.py)
    syncs = gc.syncs if gc is not None else 0
    await store.close()
    shutil.rmtree(root)
    lat.sort()
    n = max(count, 1)
    return {"rate": count / elapsed, "mb_s": count * size / elapsed / MiB,
            "p50_ms": lat[len(lat) // 2] * 1000, "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
            "per_batch": count / max(batches, 1), "per_sync": count / syncs if syncs else 0.0,
            "writer_us": used[0] / n * 1e6, "loop_us": used[1] / n * 1e6, "proc_us": used[2] / n * 1e6}


async def append_many_run(root: Path, durability: str, size: int, batch: int, seconds: float) -> float:
    store = await MessageStore.open(StoreConfig(root=root, durability=durability))  # type: ignore[arg-type]
    msgs = [NewMessage(TOPIC, i % 8, os.urandom(size)) for i in range(batch)]
    count = 0
    t0 = time.perf_counter()
    stop_at = t0 + seconds

    async def producer() -> None:
        nonlocal count
        while time.perf_counter() < stop_at:
            await store.append_many(msgs)
            count += batch

    await asyncio.gather(*(producer() for _ in range(4)))
    elapsed = time.perf_counter() - t0
    await store.close()
    shutil.rmtree(root)
    return count / elapsed


async def read_run(root: Path, size: int, n: int) -> tuple[float, float]:
    store = await MessageStore.open(StoreConfig(root=root, durability="async"))
    body = os.urandom(size)
    for _ in range(0, n, 1000):
        await store.append_many([NewMessage(TOPIC, 0, body)] * 1000)
    t0 = time.perf_counter()
    offset, got = 0, 0
    while True:
        res = await store.read(TOPIC, 0, offset, max_count=64, max_bytes=8 * MiB)
        if not res.messages:
            break
        got += len(res.messages)
        offset = res.next_offset
    elapsed = time.perf_counter() - t0
    await store.close()
    shutil.rmtree(root)
    return got / elapsed, got * size / elapsed / MiB


async def backlog_run(root: Path, n: int) -> None:
    store = await MessageStore.open(StoreConfig(root=root, durability="async"))
    body = os.urandom(128)
    batch = [NewMessage(TOPIC, i % 4, body) for i in range(1000)]
    rss_start = rss_mib()
    window = max(n // 20, 1000)
    rates: list[float] = []
    t_window, in_window = time.perf_counter(), 0
    done = 0
    samples: list[float] = []
    cpu = CpuMeter(store)
    cpu_at = cpu.read()
    window_cpu_us: list[tuple[float, float, float]] = []  # writer, loop, process per message
    while done < n:
        await store.append_many(batch)
        done += len(batch)
        in_window += len(batch)
        if in_window >= window:
            now = time.perf_counter()
            rates.append(in_window / (now - t_window))
            samples.append(rss_mib())
            cpu_now = cpu.read()
            window_cpu_us.append(tuple((b - a) / in_window * 1e6  # type: ignore[arg-type]
                                       for a, b in zip(cpu_at, cpu_now)))
            t_window, in_window, cpu_at = now, 0, cpu_now
    print(f"backlog: {n:,} x 128 B appended; append rate first 5%: {rates[0]:,.0f}/s, "
          f"last 5%: {rates[-1]:,.0f}/s")
    print("backlog: append rate per 5% window, k/s: " + " ".join(f"{r / 1000:.0f}" for r in rates))
    quarter = max(len(rates) // 4, 1)  # one 5 % window is at the mercy of a VM hiccup
    first_q, last_q = sum(rates[:quarter]) / quarter, sum(rates[-quarter:]) / quarter
    print(f"backlog: append rate first 25%: {first_q:,.0f}/s, last 25%: {last_q:,.0f}/s "
          f"(end/start {last_q / first_q:.2f})")
    print("backlog: CPU us/msg (writer, loop, process) first 5%: "
          + ", ".join(f"{x:.2f}" for x in window_cpu_us[0]) + "; last 5%: "
          + ", ".join(f"{x:.2f}" for x in window_cpu_us[-1]))
    peak = max(peak_rss_mib(), *samples)  # ru_maxrss and statm are sampled differently
    print(f"backlog: RSS start {rss_start:.1f} MiB, middle {samples[len(samples) // 2]:.1f} MiB, "
          f"end {samples[-1]:.1f} MiB, peak {peak:.1f} MiB")

    async def read_from(q: int, offset: int, count: int) -> float:
        t0, got = time.perf_counter(), 0
        while got < count:
            res = await store.read(TOPIC, q, offset, max_count=64)
            if not res.messages:
                break
            got += len(res.messages)
            offset = res.next_offset
        return got / (time.perf_counter() - t0)

    lo, hi = store.queue_bounds(TOPIC, 0)
    sample = min(200_000, hi - lo)
    oldest = await read_from(0, lo, sample)
    newest = await read_from(0, hi - sample, sample)
    print(f"backlog: read rate from oldest offset {oldest:,.0f} msgs/s, from newest {newest:,.0f} msgs/s "
          f"({sample:,} messages each, page cache permitting)")
    await store.close()
    shutil.rmtree(root)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="short runs, finishes in < 60 s")
    ap.add_argument("--backlog", type=int, default=None, help="backlog size (default 10M; quick: 200k)")
    ap.add_argument("--skip-matrix", action="store_true", help="only the backlog run")
    ap.add_argument("--dir", type=Path, default=None, help="where to put the temporary data")
    ap.add_argument("--targets", type=int, default=0, metavar="N",
                    help="only the issue's target cells (1 KiB: async @256/@1024, sync @256; "
                         "16 KiB async @256 against raw sequential bandwidth), N rounds")
    ap.add_argument("--event-loop", choices=LOOP_CHOICES, default="auto",
                    help="the loop the appenders run on; auto = the node's default (uvloop)")
    return ap.parse_args()


async def main(args: argparse.Namespace) -> None:
    freeze_startup_heap()  # as the node does once started (brokers/node/heap.py)
    seconds = 0.6 if args.quick else 3.0
    if args.targets:
        base = Path(tempfile.mkdtemp(prefix="store-bench-", dir=args.dir))
        try:
            await targets(base, seconds, args.targets)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        return
    backlog = args.backlog if args.backlog is not None else (200_000 if args.quick else 10_000_000)
    base = Path(tempfile.mkdtemp(prefix="store-bench-", dir=args.dir))
    print(f"# store bench ({'quick' if args.quick else 'full'}), {os.cpu_count()} CPUs, "
          f"{loop_label()}, data in {base}")
    try:
        if not args.skip_matrix:
            await matrix(base, seconds, args.quick)
        if backlog:
            await backlog_run(base / "backlog", backlog)
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def writer_cpu(root: Path, size: int = 1024, batch: int = 256, rounds: int = 15) -> float:
    """CPU microseconds per message of the writer's batch step alone (``AppendWriter._process``
    called directly, the writer thread idle meanwhile): encode, pwritev, queue entries, results.
    Best of ``rounds``; far less noisy than anything involving the event loop."""
    store = await MessageStore.open(StoreConfig(root=root, durability="async"))
    loop = asyncio.get_running_loop()
    msgs = [NewMessage(TOPIC, i % 8, os.urandom(size)) for i in range(batch)]
    best = float("inf")
    for _ in range(rounds):
        t0 = time.thread_time()
        for _ in range(20):
            store.writer._process([(msgs, loop.create_future())])
        best = min(best, (time.thread_time() - t0) / (20 * batch))
        await asyncio.sleep(0)  # let the loop run the resolutions
    await store.close()
    shutil.rmtree(root)
    return best * 1e6


TARGET_CELLS = (("async", 1024, 256), ("async", 1024, 1024), ("sync", 1024, 256),
                ("async", 16 * 1024, 256))


async def targets(base: Path, seconds: float, rounds: int) -> None:
    """The target cells only, interleaved round by round so that each comparison sees the same load."""
    print(f"# target cells, {rounds} rounds of {seconds:g} s, {loop_label()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    raw_seq = raw_sequential_mb_s(base, seconds)
    print(f"raw sequential write, sustained {seconds:g} s: {raw_seq:,.0f} MB/s")
    print(f"writer batch step alone (1 KiB, batches of 256): {await writer_cpu(base / 'w'):.2f} us/msg CPU")
    print(f"{'mode':>5} {'size':>6} {'conc':>5} {'msgs/s':>10} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'msgs/batch':>10} {'msgs/fsync':>10}  CPU us/msg: writer loop process")
    for _ in range(rounds):
        for durability, size, conc in TARGET_CELLS:
            r = await append_run(base / "run", durability, size, conc, seconds)
            print(f"{durability:>5} {size:>6} {conc:>5} {r['rate']:>10,.0f} {r['p50_ms']:>7.2f} "
                  f"{r['p99_ms']:>7.2f} {r['per_batch']:>10.1f} {r['per_sync']:>10.1f}  "
                  f"{r['writer_us']:>6.1f} {r['loop_us']:>5.1f} {r['proc_us']:>6.1f}"
                  + (f"  {r['mb_s']:,.0f} MB/s = {r['mb_s'] / raw_seq:.2f} of raw"
                     if size > 1024 else ""))
    print(f"# load average at the end {os.getloadavg()[0]:.1f}")


async def matrix(base: Path, seconds: float, quick: bool) -> None:
    raw_seq = raw_sequential_mb_s(base, seconds)
    print(f"raw sequential write, sustained {seconds:g} s: {raw_seq:,.0f} MB/s")
    raw_gc: dict[tuple[int, int], float] = {}
    for size in SIZES:
        for conc in CONCURRENCY:
            raw_gc[(size, conc)] = raw_group_commit(base, size, conc, seconds / 3)
    print("raw group commit (write+fdatasync, batch = concurrency), msgs/s:")
    for size in SIZES:
        print(f"  {size:>6} B: " + "  ".join(f"c={c}: {raw_gc[(size, c)]:>9,.0f}" for c in CONCURRENCY))
    print(f"{'mode':>5} {'size':>6} {'conc':>5} {'msgs/s':>10} {'MB/s':>8} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'msgs/batch':>10} {'store/raw':>9}  CPU us/msg: writer loop process")
    for durability in ("async", "sync"):
        for size in SIZES:
            for conc in CONCURRENCY:
                r = await append_run(base / "run", durability, size, conc, seconds)
                ratio = (r["mb_s"] / raw_seq if durability == "async"
                         else r["rate"] / raw_gc[(size, conc)])
                print(f"{durability:>5} {size:>6} {conc:>5} {r['rate']:>10,.0f} {r['mb_s']:>8,.1f} "
                      f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['per_batch']:>10.1f} {ratio:>9.2f}  "
                      f"{r['writer_us']:>6.1f} {r['loop_us']:>5.1f} {r['proc_us']:>6.1f}")
    print("append_many (4 producers x batches of 256), msgs/s:")
    for durability in ("async", "sync"):
        line = []
        for size in SIZES:
            rate = await append_many_run(base / "run", durability, size, 256, seconds)
            line.append(f"{size} B: {rate:,.0f} ({rate * size / MiB:,.0f} MB/s)")
        print(f"  {durability}: " + "  ".join(line))
    for size in (1024, 16 * 1024):
        n = 100_000 if size == 1024 else 20_000
        rate, mb = await read_run(base / "read", size, n if not quick else n // 2)
        print(f"read {size} B, batches of 64: {rate:,.0f} msgs/s, {mb:,.0f} MB/s")


def loop_label() -> str:
    return f"{running_loop_name()} event loop"


if __name__ == "__main__":
    arguments = parse_args()
    run_on_loop(main(arguments), arguments.event_loop)
