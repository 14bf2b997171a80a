"""The checkpoint: a tiny file saying up to where everything derived is durable.

Layout (little-endian, 40 bytes):

    offset  size  field
         0     4  magic               CHECKPOINT_MAGIC
         4     4  version             1
         8     8  dispatched_offset   every record below it is fsync'ed in the commit log AND
                                      its consume-queue entries and key-index rows are durable
        16     8  flushed_offset      commit-log bytes known fsync'ed when written (>= dispatched)
        24     8  written_at_ms       store clock when written
        32     4  crc32               of bytes [0, 32)
        36     4  reserved            0

It is replaced atomically (write temp file, fsync, rename, fsync directory), so a reader sees
either the old or the new checkpoint. The per-queue positions need no separate field: recovery
cuts every consume queue back to entries below ``dispatched_offset`` and replays from there.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .errors import CheckpointError

CHECKPOINT_MAGIC: Final = 0xC4EC4901
_BODY: Final = struct.Struct(
    "<"
    "I"  # magic
    "I"  # version
    "q"  # dispatched_offset
    "q"  # flushed_offset
    "q"  # written_at_ms
)
_TAIL: Final = struct.Struct(
    "<"
    "I"  # crc32 of the body
    "I"  # reserved
)


@dataclass(frozen=True)
class Checkpoint:
    dispatched_offset: int
    flushed_offset: int
    written_at_ms: int


def read_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``, None if absent; raises CheckpointError if it does not validate."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if len(raw) != _BODY.size + _TAIL.size:
        raise CheckpointError(f"checkpoint has {len(raw)} bytes")
    magic, version, dispatched, flushed, at = _BODY.unpack_from(raw)
    crc, _ = _TAIL.unpack_from(raw, _BODY.size)
    if magic != CHECKPOINT_MAGIC or version != 1 or zlib.crc32(raw[: _BODY.size]) != crc:
        raise CheckpointError("checkpoint magic, version or CRC mismatch")
    return Checkpoint(dispatched, flushed, at)


def write_checkpoint(path: Path, cp: Checkpoint) -> None:
    """Atomically replace the checkpoint at ``path`` (durable when this returns)."""
    body = _BODY.pack(CHECKPOINT_MAGIC, 1, cp.dispatched_offset, cp.flushed_offset, cp.written_at_ms)
    data = body + _TAIL.pack(zlib.crc32(body), 0)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
