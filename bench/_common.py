"""Small helpers shared by the benches: percentiles and CPU accounting of the server under test.

On a shared 2-core machine wall-clock throughput mixes the server's cost with the client's and
with whatever else runs; messages per *server* CPU-second is the steadier efficiency figure.
Linux only (/proc); every function degrades to "unknown" (nan / None) elsewhere.
"""

from __future__ import annotations

import math
import os
import resource
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def pct(xs: list[float], p: float) -> float:
    """Percentile ``p`` (0..1) in ms of a list of seconds; nan when empty."""
    if not xs:
        return math.nan
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1e3


def listener_pid(port: int) -> int | None:
    """Pid of the process listening on TCP ``port`` (needs read access to its /proc/<pid>/fd)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(f"socket:[{f[9]}]")
    if not inodes:
        return None
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    return int(pid)
        except OSError:
            continue
    return None


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of ``pid`` (all threads); nan when unknown."""
    if pid is None:
        return math.nan
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return math.nan
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def child_pids(pid: int) -> list[int]:
    """Live direct children of ``pid`` (e.g. a node's gRPC front-end workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2:].split()[1]) == pid:  # field 4: ppid
            found.append(int(stat.parent.name))
    return found


def tree_cpu_seconds(pid: int | None) -> float:
    """CPU seconds of ``pid`` plus its live children (a broker node's gRPC front-end workers);
    nan when ``pid`` itself is unknown."""
    total = cpu_seconds(pid)
    if pid is not None and not math.isnan(total):
        for child in child_pids(pid):
            spent = cpu_seconds(child)
            total += 0.0 if math.isnan(spent) else spent
    return total


def own_cpu_seconds() -> float:
    """CPU seconds of this process (all threads) plus its waited-for children (e.g. h2load)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class CpuMeter:
    """Server and client CPU seconds, and wall seconds, between ``start()`` and ``stop()``; the
    server's are its whole process tree's (``tree_cpu_seconds``)."""

    def __init__(self, server_pid: int | None) -> None:
        self.pid = server_pid
        self.server_s = self.client_s = self.wall_s = math.nan

    def start(self) -> CpuMeter:
        self._s0, self._c0 = tree_cpu_seconds(self.pid), own_cpu_seconds()
        self._w0 = time.perf_counter()
        return self

    def stop(self) -> CpuMeter:
        self.server_s = tree_cpu_seconds(self.pid) - self._s0
        self.client_s = own_cpu_seconds() - self._c0
        self.wall_s = time.perf_counter() - self._w0
        return self

    def per_server_second(self, messages: int) -> float:
        """Messages per server CPU-second (nan when the server's CPU time is unknown)."""
        if math.isnan(self.server_s) or self.server_s <= 0:
            return math.nan
        return messages / self.server_s

    def server_share(self) -> float:
        """Server CPU as a fraction of one core over the interval."""
        return self.server_s / self.wall_s if self.wall_s > 0 else math.nan


def _frame_name(frame: str) -> str:
    """``func (path/file.py:123)`` -> ``func (path/file.py)``: one entry per function."""
    head, _, loc = frame.rpartition(" (")
    return f"{head} ({loc.rsplit(':', 1)[0]})" if head else frame


def summarise_collapsed(path: Path, top: int = 12) -> str:
    """Text summary of a py-spy ``--format raw`` (collapsed stacks) file: the functions with the
    most samples on top of the stack (self) and on the stack at all (inclusive)."""
    self_n: dict[str, int] = {}
    incl_n: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if frames:
            self_n[frames[-1]] = self_n.get(frames[-1], 0) + n
        for f in set(frames):
            incl_n[f] = incl_n.get(f, 0) + n
    if not total:
        return f"{path.name}: no samples"
    out = [f"{path.name}: {total} active samples"]
    for title, table in (("self", self_n), ("inclusive", incl_n)):
        out.append(f"  top {title}:")
        skip = ("runpy", "asyncio/runners.py", "_run_module_as_main", "<module>", "main (",
                "run_forever", "run_until_complete", "_bootstrap")
        rows = sorted(table.items(), key=lambda kv: -kv[1])
        shown = 0
        for name, n in rows:
            if title == "inclusive" and any(s in name for s in skip):
                continue
            out.append(f"    {100 * n / total:5.1f}%  {name}")
            shown += 1
            if shown >= top:
                break
    return "\n".join(out)
