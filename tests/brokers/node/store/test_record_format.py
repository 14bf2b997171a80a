"""The record checksum on disk: CRC-32C for what is written now, zlib CRC-32 records of format 1
still read (and still checked) after an upgrade."""

from __future__ import annotations

import struct
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from brokers.node.store import AppendResult, MessageStore, NewMessage, ReadStatus, StoreConfig

pytestmark = pytest.mark.asyncio

_PREFIX = struct.Struct("<III")  # total length, magic, checksum (docs/storage.md)


def crc32c_reference(data: bytes) -> int:
    """Bitwise CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): slow but independent of
    the library the store uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _segment(config: StoreConfig, result: AppendResult) -> tuple[Path, int]:
    base = result.commitlog_offset - result.commitlog_offset % config.segment_bytes
    return config.root / "commitlog" / f"{base:020d}", result.commitlog_offset - base


def _msg(i: int) -> NewMessage:
    return NewMessage("ns%t", 0, f"body-{i}".encode() * 7, tag="tg", keys=(f"k{i}",))


async def test_records_are_written_with_a_crc32c_over_everything_after_the_prefix(
        config: StoreConfig) -> None:
    assert crc32c_reference(b"123456789") == 0xE3069283  # the published check value
    store = await MessageStore.open(config)
    res = await store.append_many([_msg(i) for i in range(5)])
    await store.close()
    for r in res:
        path, at = _segment(config, r)
        data = path.read_bytes()
        total, magic, crc = _PREFIX.unpack_from(data, at)
        assert magic == 0xDA7A5702
        assert crc == crc32c_reference(data[at + 12: at + total])


async def test_format_1_records_are_still_read_and_checked(config: StoreConfig) -> None:
    cfg = replace(config, segment_bytes=64 * 1024)
    store = await MessageStore.open(cfg)
    res = await store.append_many([_msg(i) for i in range(6)])
    await store.close()
    # Rewrite every record as format 1 (zlib CRC-32 under the old magic), as an older node
    # would have left them; record 3 gets a checksum that matches neither algorithm.
    path, _ = _segment(cfg, res[0])
    data = bytearray(path.read_bytes())
    for i, r in enumerate(res):
        at = r.commitlog_offset
        total = _PREFIX.unpack_from(data, at)[0]
        crc = zlib.crc32(bytes(data[at + 12: at + total]))
        _PREFIX.pack_into(data, at, total, 0xDA7A5701, crc ^ 1 if i == 3 else crc)
    path.write_bytes(bytes(data))

    store = await MessageStore.open(cfg)
    head = await store.read("ns%t", 0, 0, max_count=10)
    assert [bytes(m.body) for m in head.messages] == [_msg(i).body for i in range(3)]
    assert [m.tag for m in head.messages] == ["tg"] * 3
    bad = await store.read("ns%t", 0, 3)
    assert bad.status is ReadStatus.CORRUPTED and "CRC mismatch" in bad.detail
    tail = await store.read("ns%t", 0, 4, max_count=10)
    assert [bytes(m.body) for m in tail.messages] == [_msg(4).body, _msg(5).body]
    assert (await store.get_by_id(res[5].msg_id)) is not None
    # New appends after the upgrade are format 2, in the same segment.
    new = await store.append(_msg(6))
    await store.close()
    path, at = _segment(cfg, new)
    raw = path.read_bytes()
    assert _PREFIX.unpack_from(raw, at)[1] == 0xDA7A5702
