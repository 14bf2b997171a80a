"""Keep the cyclic garbage collector's full collections short in a long-running process.

A full (generation 2) collection walks every tracked object. The node's startup leaves ~50k of
them (protobuf descriptors, grpc, the loaded modules and state), so each full collection held the
GIL for 15-30 ms on this VM, several times a minute under load: the largest part of the gRPC
send latency's p99 (docs/performance.md, fifth round). Objects alive once startup is over live
as long as the process, so they are frozen out of every later collection (``gc.freeze``, as
CPython's documentation suggests for pre-fork servers); what is allocated later is still
collected as usual.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect once, then exclude every object alive now from future collections."""
    gc.collect()
    gc.freeze()
