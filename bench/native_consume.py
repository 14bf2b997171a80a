"""Consume + ack driven by a native client (bench/native/consume_ack.c, libnghttp2).

h2load cannot receive-then-ack (the ack carries the receipt handles of what was received), and
grpc.aio consumer processes take about half of a 2-core machine, so their figure is the
client's. ``consume_ack`` is a small single-threaded C client: ``connections`` h2c connections
of ``loops`` concurrent ReceiveMessage -> AckMessage loops each, draining a backlog. The request
bytes are made here with the protobuf classes; the C side only appends the ack entries.

    from native_consume import consume_with_ack_native
    r = consume_with_ack_native(node.endpoint, signed_headers(), receive_bytes, ack_prefix,
                                connections=4, loops=2, tmp=tmp)
    r["msgs_s"], r["messages"], r["ack_failures"], r["cpu_s"]

Building needs gcc and ``apt-get install libnghttp2-dev``; the binary is rebuilt when the
source is newer.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).resolve().parent / "native" / "consume_ack.c"


def build(tmp: Path) -> Path:
    """Compile ``consume_ack.c`` into ``tmp`` (unless an up-to-date binary is there already);
    returns the binary's path. Raises RuntimeError when the compiler fails, saying which package
    to install when the nghttp2 headers are missing."""
    tmp.mkdir(parents=True, exist_ok=True)
    binary = tmp / "consume_ack"
    if binary.exists() and binary.stat().st_mtime >= SOURCE.stat().st_mtime:
        return binary
    partial = tmp / f"consume_ack.{os.getpid()}.tmp"  # renamed when complete: no half binary
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-o", str(partial), str(SOURCE), "-lnghttp2"]
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise RuntimeError("gcc not found: apt-get install gcc") from None
    if done.returncode != 0:
        if "nghttp2/nghttp2.h" in done.stderr:
            raise RuntimeError("nghttp2 headers missing: apt-get install libnghttp2-dev")
        raise RuntimeError(f"building consume_ack failed:\n{done.stderr}")
    os.replace(partial, binary)
    return binary


def consume_with_ack_native(endpoint: str, headers: list[tuple[str, str]],
                            receive_request: bytes, ack_prefix: bytes, connections: int,
                            loops: int, idle_stop: int = 2, max_seconds: float = 60, *,
                            tmp: Path, dump_ids: Path | None = None) -> dict[str, Any]:
    """Drain a backlog with ``connections`` x ``loops`` receive+ack loops of the native client.

    ``endpoint`` is ``host:port`` (h2c); ``headers`` the gRPC metadata sent on every request
    (the RocketMQ auth headers); ``receive_request`` a serialized ReceiveMessageRequest;
    ``ack_prefix`` a serialized AckMessageRequest with only ``group`` and ``topic`` set. A loop
    stops after ``idle_stop`` receives in a row that returned nothing; ``max_seconds`` is a hard
    stop. ``dump_ids``, if given, gets one ``queue_id offset message_id`` line per message.

    Returns the client's counts (messages, first_receive, last_message, receives,
    empty_receives, acks, acked_messages, ack_failures, errors, cpu_s: the client's own CPU)
    plus ``msgs_s`` = messages / (last_message - first_receive), 0 when nothing was received.
    """
    binary = build(tmp)
    host, port = endpoint.rsplit(":", 1)
    run_id = uuid.uuid4().hex
    receive_file = tmp / f"receive-{run_id}.bin"
    ack_file = tmp / f"ack-prefix-{run_id}.bin"
    receive_file.write_bytes(receive_request)
    ack_file.write_bytes(ack_prefix)
    cmd = [str(binary), "--host", host.strip("[]"), "--port", port,
           "--connections", str(connections), "--loops-per-connection", str(loops),
           "--receive-request", str(receive_file), "--ack-prefix", str(ack_file),
           "--idle-stop", str(idle_stop), "--max-seconds", str(max_seconds)]
    for name, value in headers:
        cmd += ["--header", f"{name}: {value}"]
    if dump_ids is not None:
        cmd += ["--dump-ids", str(dump_ids)]
    try:
        done = subprocess.run(cmd, check=False, capture_output=True, text=True,
                              timeout=max_seconds + 30)
    finally:
        receive_file.unlink(missing_ok=True)
        ack_file.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"consume_ack failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    span = result["last_message"] - result["first_receive"]
    result["msgs_s"] = result["messages"] / span if result["messages"] and span > 0 else 0.0
    if done.stderr.strip():
        result["stderr"] = done.stderr.strip()
    return result
