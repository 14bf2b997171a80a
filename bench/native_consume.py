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

The same client also measures send -> receive latency (``paced_send_receive_native``): it sends
single-message SendMessage requests at a fixed rate, each body stamped with its send time, while
its receive loops consume + ack them, all in one native process (grpc.aio sender and consumer
processes put their own queueing on a 2-core machine into the figure):

    send, offset = timestamped_send_request(NS, "lat3000")
    r = paced_send_receive_native(node.endpoint, signed_headers(), send, offset, receive_bytes,
                                  ack_prefix, rate=3000, seconds=10, tmp=tmp)
    r["achieved_rate"], r["send_p99_ms"], r["e2e_p50_ms"], r["e2e_p99_ms"], r["e2e_count"]

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

#: Marks where the send time goes in a timestamped body (its 8 bytes are overwritten by the
#: native client): distinctive enough not to occur anywhere else in the request.
SENTINEL = b"\xa5T1MEST\x5a"


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


def _run(endpoint: str, headers: list[tuple[str, str]], files: dict[str, bytes],
         options: list[str], max_seconds: float, tmp: Path) -> dict[str, Any]:
    """Run the native client (built first if need be) against ``endpoint`` (``host:port``) with
    ``headers`` on every request, each of ``files`` (option -> bytes) written to a temporary
    file passed as that option's value, then ``options`` and ``--max-seconds``. Returns its JSON
    line plus ``msgs_s`` = messages / (last_message - first_receive), 0 when nothing was
    received, and ``stderr`` when it said something. Raises RuntimeError when it fails."""
    binary = build(tmp)
    host, port = endpoint.rsplit(":", 1)
    run_id = uuid.uuid4().hex
    cmd = [str(binary), "--host", host.strip("[]"), "--port", port]
    paths: list[Path] = []
    try:
        for option, data in files.items():
            path = tmp / f"{option.strip('-')}-{run_id}.bin"
            paths.append(path)
            path.write_bytes(data)
            cmd += [option, str(path)]
        cmd += [*options, "--max-seconds", str(max_seconds)]
        for name, value in headers:
            cmd += ["--header", f"{name}: {value}"]
        done = subprocess.run(cmd, check=False, capture_output=True, text=True,
                              timeout=max_seconds + 30)
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
    if done.returncode != 0:
        raise RuntimeError(f"consume_ack failed ({done.returncode}): {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    span = result["last_message"] - result["first_receive"]
    result["msgs_s"] = result["messages"] / span if result["messages"] and span > 0 else 0.0
    if done.stderr.strip():
        result["stderr"] = done.stderr.strip()
    return result


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
    options = ["--connections", str(connections), "--loops-per-connection", str(loops),
               "--idle-stop", str(idle_stop)]
    if dump_ids is not None:
        options += ["--dump-ids", str(dump_ids)]
    return _run(endpoint, headers,
                {"--receive-request": receive_request, "--ack-prefix": ack_prefix},
                options, max_seconds, tmp)


def timestamped_send_request(namespace: str, topic: str) -> tuple[bytes, int]:
    """A serialized SendMessageRequest of one NORMAL message to ``topic`` with a 1 KiB body
    whose first 8 bytes are ``SENTINEL``, and the offset of those bytes in it (the
    ``body_offset`` of ``paced_send_receive_native``, where the send time goes)."""
    from rocketmq.grpc_protocol import definition_pb2 as pb
    from rocketmq.grpc_protocol import service_pb2 as spb

    data: bytes = spb.SendMessageRequest(messages=[pb.Message(
        topic=pb.Resource(resource_namespace=namespace, name=topic),
        body=SENTINEL + b"x" * 1016,
        system_properties=pb.SystemProperties(message_id="01LAT0000000001",
                                              message_type=pb.NORMAL),
    )]).SerializeToString()
    if data.count(SENTINEL) != 1:
        raise ValueError(f"the body's sentinel occurs {data.count(SENTINEL)} times in the request")
    return data, data.index(SENTINEL)


def paced_send_receive_native(endpoint: str, headers: list[tuple[str, str]],
                              send_request: bytes, body_offset: int, receive_request: bytes,
                              ack_prefix: bytes, rate: float, seconds: float, *,
                              connections: int = 2, loops: int = 2, send_connections: int = 2,
                              tmp: Path, max_seconds: float | None = None,
                              dump_ids: Path | None = None) -> dict[str, Any]:
    """Send at ``rate`` msgs/s for ``seconds`` and consume + ack them at the same time, from one
    native process; measure send RPC and send -> receive latency.

    ``send_request`` is a serialized SendMessageRequest of one message and ``body_offset`` the
    offset in it of 8 body bytes that each request's send time overwrites (see
    ``timestamped_send_request``); requests go round-robin over ``send_connections``
    connections of their own, request i at start + i / rate (when late, what is due goes at
    once). ``receive_request``, ``ack_prefix`` and ``connections`` x ``loops`` receive loops
    are as in ``consume_with_ack_native``, on the same topic and a group of its own; the loops
    stop once sending is over and every sent message was received, or 3 s after.
    ``max_seconds`` (default: ``seconds`` + 20) is a hard stop; ``dump_ids`` as there.

    Returns ``consume_with_ack_native``'s counts plus sent (successful sends), send_failures,
    achieved_rate, send_late_max_ms (the most a request went after its due time), send_p50_ms,
    send_p99_ms (submission to the end of the response), e2e_count (received messages with a
    timestamp), e2e_p50_ms, e2e_p99_ms, e2e_max_ms (send time to the message's arrival, both
    wall-clock: one machine); a percentile is None when there is no sample.
    """
    options = ["--connections", str(connections), "--loops-per-connection", str(loops),
               "--body-offset", str(body_offset), "--send-rate", str(rate),
               "--send-seconds", str(seconds), "--send-connections", str(send_connections)]
    if dump_ids is not None:
        options += ["--dump-ids", str(dump_ids)]
    files = {"--receive-request": receive_request, "--ack-prefix": ack_prefix,
             "--send-request": send_request}
    return _run(endpoint, headers, files, options,
                seconds + 20 if max_seconds is None else max_seconds, tmp)
