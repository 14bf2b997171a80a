"""Keep the cyclic garbage collector's full collections short in a long-running process.

A full (generation 2) collection walks every tracked object. The node's startup leaves ~50k of
them (protobuf descriptors, grpc, the loaded modules and state), so each full collection held the
GIL for 15-30 ms on this VM, several times a minute under load: the largest part of the gRPC
send latency's p99 (docs/performance.md, fifth round). Objects alive once startup is over live
as long as the process, so they are frozen out of every later collection (``gc.freeze``, as
CPython's documentation suggests for pre-fork servers); what is allocated later is still
collected as usual. The cost is bounded by what startup allocated: a frozen object that later
ends up in an unreachable cycle (say, part of the first desired state, replaced by a reload) is
never reclaimed; acyclic garbage is still freed by reference counting.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect once, then exclude every object alive now from future collections."""
    gc.collect()
    gc.freeze()
